// The pages of the UI. Pages appear in the navigation as the APIs they need land (VMs, Images, Builds).
export const PATHS = {
  catalog: "/catalog",
  catalogEdit: "/catalog/edit",
} as const;

export interface NavItem {
  path: string;
  title: string;
}

export const NAV: readonly NavItem[] = [{ path: PATHS.catalog, title: "Catalog" }];
