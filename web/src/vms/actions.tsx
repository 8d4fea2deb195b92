// A VM's lifecycle actions, enabled exactly when the server would accept them (allowedActions, the rule
// the API applies), and delete behind a confirmation. The answer of an action is the VM itself, put in
// the caches at once; a refusal is shown in the server's words.
import { Button, Modal, ModalBody, ModalFooter, ModalHeader } from "@patternfly/react-core";
import { useQueryClient } from "@tanstack/react-query";
import { type ReactNode, useState } from "react";
import { allowedActions, VM_ACTIONS } from "../../../src/vms/model.ts";
import { actOnVm, deleteVm, type Vm, type VmAction, vmKey, vmsKey, withVm } from "../api/vms.ts";
import { errorText } from "../components/ErrorAlert.tsx";

export const ACTION_LABELS: Record<VmAction, string> = {
  start: "Start",
  stop: "Stop",
  restart: "Restart",
  pause: "Pause",
  unpause: "Unpause",
};

export { VM_ACTIONS };

export function canRun(vm: Vm, action: VmAction): boolean {
  return allowedActions(vm.status.phase).includes(action);
}

export interface VmActionsState {
  /** The action (or "delete") under way, if any. */
  pending: VmAction | "delete" | undefined;
  run: (action: VmAction) => Promise<void>;
  /** Asks for a confirmation (`dialog`), then deletes. */
  askDelete: () => void;
  /** The delete confirmation while it is asked for; render it. */
  dialog: ReactNode;
}

/** Runs actions on VMs of a namespace; failures go to `onError` as one sentence. */
export function useVmActions(
  namespace: string,
  vm: Vm,
  onError: (message: string) => void,
  onDeleted?: () => void,
): VmActionsState {
  const client = useQueryClient();
  const [pending, setPending] = useState<VmAction | "delete" | undefined>();
  const [confirm, setConfirm] = useState(false);
  const run = async (action: VmAction) => {
    setPending(action);
    try {
      const updated = await actOnVm(namespace, vm.name, action);
      client.setQueryData(vmsKey(namespace), (list: Vm[] | undefined) => withVm(list, updated));
      client.setQueryData(vmKey(namespace, vm.name), updated);
    } catch (error) {
      onError(`Cannot ${action} ${vm.name}: ${errorText(error)}`);
    } finally {
      setPending(undefined);
    }
  };
  const remove = async () => {
    setPending("delete");
    try {
      await deleteVm(namespace, vm.name);
      client.setQueryData(vmsKey(namespace), (list: Vm[] | undefined) =>
        (list ?? []).filter((v) => v.name !== vm.name),
      );
      client.removeQueries({ queryKey: vmKey(namespace, vm.name) });
      return true;
    } catch (error) {
      onError(`Cannot delete ${vm.name}: ${errorText(error)}`);
      return false;
    } finally {
      setPending(undefined);
    }
  };
  const dialog = confirm ? (
    <DeleteVmModal
      vm={vm}
      busy={pending === "delete"}
      onCancel={() => setConfirm(false)}
      onConfirm={async () => {
        if (!(await remove())) return;
        setConfirm(false);
        onDeleted?.();
      }}
    />
  ) : null;
  return { pending, run, askDelete: () => setConfirm(true), dialog };
}

function DeleteVmModal({
  vm,
  onConfirm,
  onCancel,
  busy,
}: {
  vm: Vm;
  onConfirm: () => void;
  onCancel: () => void;
  busy: boolean;
}) {
  return (
    <Modal
      isOpen
      variant="small"
      onClose={onCancel}
      aria-labelledby="delete-vm-title"
      aria-describedby="delete-vm-body"
    >
      <ModalHeader title={`Delete ${vm.name}?`} labelId="delete-vm-title" titleIconVariant="warning" />
      <ModalBody id="delete-vm-body">
        The VM is stopped and its disk, cloud-init seed and console log are removed. This cannot be undone.
      </ModalBody>
      <ModalFooter>
        <Button variant="danger" onClick={onConfirm} isLoading={busy} isDisabled={busy}>
          Delete
        </Button>
        <Button variant="link" onClick={onCancel} isDisabled={busy}>
          Cancel
        </Button>
      </ModalFooter>
    </Modal>
  );
}

/** The actions as a row of buttons (the details page). */
export function VmActionButtons({ vm, actions }: { vm: Vm; actions: VmActionsState }) {
  return (
    <fieldset className="osimg-vm-actions" aria-label={`Actions on ${vm.name}`}>
      {VM_ACTIONS.map((action) => (
        <Button
          key={action}
          variant="secondary"
          size="sm"
          onClick={() => actions.run(action)}
          isDisabled={actions.pending !== undefined || !canRun(vm, action)}
          isLoading={actions.pending === action}
        >
          {ACTION_LABELS[action]}
        </Button>
      ))}
      <Button
        variant="danger"
        size="sm"
        onClick={actions.askDelete}
        isDisabled={actions.pending !== undefined}
        isLoading={actions.pending === "delete"}
      >
        Delete
      </Button>
    </fieldset>
  );
}
