import {
  Button,
  EmptyState,
  EmptyStateActions,
  EmptyStateBody,
  EmptyStateFooter,
  PageSection,
} from "@patternfly/react-core";
import { useLocation } from "wouter";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { PATHS } from "../routes.ts";

export function NotFoundPage() {
  const [location, navigate] = useLocation();
  const namespace = useNamespace();
  return (
    <PageSection isFilled>
      <EmptyState titleText="Page not found" headingLevel="h1">
        <EmptyStateBody>There is no page at {location}.</EmptyStateBody>
        <EmptyStateFooter>
          <EmptyStateActions>
            <Button variant="primary" onClick={() => navigate(withNamespace(PATHS.catalog, namespace))}>
              Go to the catalog
            </Button>
          </EmptyStateActions>
        </EmptyStateFooter>
      </EmptyState>
    </PageSection>
  );
}
