// The Create VM dialog, loaded on first use (it brings the server's request rules: yaml, zod); a "Create
// VM" button for pages; after creating, the VMs page shows the new VM.
import { Button, type ButtonProps } from "@patternfly/react-core";
import { lazy, Suspense, useState } from "react";
import { useLocation } from "wouter";
import type { Vm } from "../api/vms.ts";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { PATHS } from "../routes.ts";

const CreateVmModal = lazy(() => import("./CreateVmModal.tsx"));

export function CreateVmButton({
  image,
  variant = "primary",
  onCreated,
}: {
  /** The OS_NAME to start with. */
  image?: string;
  variant?: ButtonProps["variant"];
  /** Default: go to the VMs page, where the new VM is listed. */
  onCreated?: (vm: Vm) => void;
}) {
  const [open, setOpen] = useState(false);
  const namespace = useNamespace();
  const [, navigate] = useLocation();
  return (
    <>
      <Button variant={variant} onClick={() => setOpen(true)}>
        Create VM
      </Button>
      {open ? (
        <Suspense fallback={null}>
          <CreateVmModal
            namespace={namespace}
            image={image}
            onClose={() => setOpen(false)}
            onCreated={(vm) => {
              setOpen(false);
              if (onCreated) onCreated(vm);
              else navigate(withNamespace(PATHS.vms, namespace));
            }}
          />
        </Suspense>
      ) : null}
    </>
  );
}
