// The Builds page's "New build" button, for those who may build (build.create: admins); the dialog is
// loaded on first use. After submitting, the build's page follows its log.
import { Button } from "@patternfly/react-core";
import { lazy, Suspense, useState } from "react";
import { useLocation } from "wouter";
import { type Session, useSession } from "../auth/AuthGate.tsx";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { buildPath } from "../routes.ts";

const NewBuildModal = lazy(() => import("./NewBuildModal.tsx"));

/**
 * Whether the session may submit builds: admins (with --auth none everyone is). In the kubernetes mode
 * RBAC decides, which the UI cannot know: the button is offered and a refusal is shown in the dialog.
 */
export function mayBuild(session: Session | undefined): boolean {
  if (!session?.me) return true;
  return session.me.via === "kubernetes" || session.me.clusterRole === "admin";
}

export function NewBuildButton() {
  const session = useSession();
  const [open, setOpen] = useState(false);
  const namespace = useNamespace();
  const [, navigate] = useLocation();
  // Not offered to those the server would refuse (build.create is for admins).
  if (!mayBuild(session)) return null;
  return (
    <>
      <Button variant="primary" onClick={() => setOpen(true)}>
        New build
      </Button>
      {open ? (
        <Suspense fallback={null}>
          <NewBuildModal
            onClose={() => setOpen(false)}
            onSubmitted={(build) => {
              setOpen(false);
              navigate(withNamespace(buildPath(build.id), namespace));
            }}
          />
        </Suspense>
      ) : null}
    </>
  );
}
