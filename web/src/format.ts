/** "1 error", "3 errors", "2 entries" */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** A server message as a sentence: "nothing was saved" -> "Nothing was saved." */
export function sentence(message: string): string {
  const text = message.trim();
  if (text === "") return text;
  const capital = text[0]?.toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
