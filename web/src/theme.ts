// Dark or light, as the system says, and following it when it changes (PatternFly 6 switches its tokens
// on a class of the root element).
const DARK_CLASS = "pf-v6-theme-dark";

export function followSystemColorScheme(root: HTMLElement = document.documentElement): () => void {
  const query = window.matchMedia("(prefers-color-scheme: dark)");
  const apply = () => root.classList.toggle(DARK_CLASS, query.matches);
  apply();
  query.addEventListener("change", apply);
  return () => query.removeEventListener("change", apply);
}
