// The pages of the UI.
export const PATHS = {
  catalog: "/catalog",
  catalogEdit: "/catalog/edit",
  vms: "/vms",
  vm: "/vms/:name",
  images: "/images",
  builds: "/builds",
  build: "/builds/:id",
} as const;

export interface NavItem {
  path: string;
  title: string;
}

export const NAV: readonly NavItem[] = [
  { path: PATHS.catalog, title: "Catalog" },
  { path: PATHS.vms, title: "VMs" },
  { path: PATHS.images, title: "Images" },
  { path: PATHS.builds, title: "Builds" },
];

export function vmPath(name: string): string {
  return `${PATHS.vms}/${encodeURIComponent(name)}`;
}

export function buildPath(id: string): string {
  return `${PATHS.builds}/${encodeURIComponent(id)}`;
}
