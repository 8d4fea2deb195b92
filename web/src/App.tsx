// The application shell: masthead, navigation, project selector, and the pages.
import {
  Bullseye,
  Masthead,
  MastheadBrand,
  MastheadContent,
  MastheadLogo,
  MastheadMain,
  Nav,
  NavItem,
  NavList,
  Page,
  SkipToContent,
  Spinner,
  Toolbar,
  ToolbarContent,
  ToolbarItem,
} from "@patternfly/react-core";
import { lazy, type MouseEvent, Suspense } from "react";
import { Redirect, Route, Switch, useLocation } from "wouter";
import { SessionMenu } from "./auth/SessionMenu.tsx";
import { NamespaceSelector, useNamespace, withNamespace } from "./namespace.tsx";
import { CatalogPage } from "./pages/CatalogPage.tsx";
import { NotFoundPage } from "./pages/NotFoundPage.tsx";
import { NAV, PATHS } from "./routes.ts";

// The catalog page comes with the first load; the others when opened. The editor brings the catalog
// parser, the VM pages the server's VM rules (yaml, zod): the first page need not wait for them.
const CatalogEditorPage = lazy(() => import("./pages/CatalogEditorPage.tsx"));
const VmsPage = lazy(() => import("./pages/VmsPage.tsx"));
const VmDetailsPage = lazy(() => import("./pages/VmDetailsPage.tsx"));
const ImagesPage = lazy(() => import("./pages/ImagesPage.tsx"));
const BuildsPage = lazy(() => import("./pages/BuildsPage.tsx"));
const BuildDetailsPage = lazy(() => import("./pages/BuildDetailsPage.tsx"));

const MAIN_ID = "osimg-main";

function useAppNavigate() {
  const [, navigate] = useLocation();
  const namespace = useNamespace();
  const href = (path: string) => withNamespace(path, namespace);
  const follow = (path: string) => (event: MouseEvent) => {
    // Let the browser open new tabs and windows itself.
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(href(path));
  };
  return { href, follow };
}

function AppNav() {
  const [location] = useLocation();
  const { href, follow } = useAppNavigate();
  return (
    <Nav aria-label="Pages" variant="horizontal">
      <NavList>
        {NAV.map((item) => (
          <NavItem
            key={item.path}
            to={href(item.path)}
            // PatternFly types the anchor's click as a FormEvent.
            onClick={(event) => follow(item.path)(event as unknown as MouseEvent)}
            isActive={location === item.path || location.startsWith(`${item.path}/`)}
          >
            {item.title}
          </NavItem>
        ))}
      </NavList>
    </Nav>
  );
}

// A few pages: the navigation sits in the masthead, leaving the page's width to the tables.
function AppMasthead() {
  const { href, follow } = useAppNavigate();
  return (
    <Masthead display={{ default: "stack", lg: "inline" }} className="osimg-masthead">
      <MastheadMain>
        <MastheadBrand>
          <MastheadLogo href={href(PATHS.catalog)} onClick={follow(PATHS.catalog)} className="osimg-brand">
            <img src="/favicon.svg" alt="" width={28} height={28} />
            <span>osimg</span>
          </MastheadLogo>
        </MastheadBrand>
      </MastheadMain>
      <MastheadContent>
        <Toolbar isFullHeight isStatic>
          <ToolbarContent>
            <ToolbarItem isOverflowContainer className="osimg-nav-item">
              <AppNav />
            </ToolbarItem>
            <ToolbarItem align={{ default: "alignEnd" }}>
              <NamespaceSelector />
            </ToolbarItem>
            <ToolbarItem>
              <SessionMenu />
            </ToolbarItem>
          </ToolbarContent>
        </Toolbar>
      </MastheadContent>
    </Masthead>
  );
}

const loading = (
  <Bullseye>
    <Spinner aria-label="Loading" />
  </Bullseye>
);

export function App() {
  const namespace = useNamespace();
  return (
    <Page
      masthead={<AppMasthead />}
      skipToContent={<SkipToContent href={`#${MAIN_ID}`}>Skip to content</SkipToContent>}
      mainContainerId={MAIN_ID}
    >
      <Suspense fallback={loading}>
        <Switch>
          <Route path="/">
            <Redirect to={withNamespace(PATHS.catalog, namespace)} replace />
          </Route>
          <Route path={PATHS.catalog} component={CatalogPage} />
          <Route path={PATHS.catalogEdit} component={CatalogEditorPage} />
          <Route path={PATHS.vms} component={VmsPage} />
          <Route path={PATHS.vm} component={VmDetailsPage} />
          <Route path={PATHS.images} component={ImagesPage} />
          <Route path={PATHS.builds} component={BuildsPage} />
          <Route path={PATHS.build} component={BuildDetailsPage} />
          <Route component={NotFoundPage} />
        </Switch>
      </Suspense>
    </Page>
  );
}
