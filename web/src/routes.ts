// The pages of the UI. A Builds page appears when the builder's API (/api/v1/builds) lands.
export const PATHS = {
  catalog: "/catalog",
  catalogEdit: "/catalog/edit",
  vms: "/vms",
  vm: "/vms/:name",
  images: "/images",
} as const;

export interface NavItem {
  path: string;
  title: string;
}

export const NAV: readonly NavItem[] = [
  { path: PATHS.catalog, title: "Catalog" },
  { path: PATHS.vms, title: "VMs" },
  { path: PATHS.images, title: "Images" },
];

export function vmPath(name: string): string {
  return `${PATHS.vms}/${encodeURIComponent(name)}`;
}
