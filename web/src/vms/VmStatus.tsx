// A VM's phase in words with its icon, and the image import's progress bar while it runs.
import { Icon, Progress, ProgressMeasureLocation, ProgressSize } from "@patternfly/react-core";
import CheckCircleIcon from "@patternfly/react-icons/dist/esm/icons/check-circle-icon";
import ExclamationCircleIcon from "@patternfly/react-icons/dist/esm/icons/exclamation-circle-icon";
import InProgressIcon from "@patternfly/react-icons/dist/esm/icons/in-progress-icon";
import OffIcon from "@patternfly/react-icons/dist/esm/icons/off-icon";
import PauseCircleIcon from "@patternfly/react-icons/dist/esm/icons/pause-circle-icon";
import type { Vm } from "../api/vms.ts";
import { phaseView } from "./status.ts";

export function VmStatus({ vm, showDetail = false }: { vm: Vm; showDetail?: boolean }) {
  const view = phaseView(vm);
  const icon = view.busy ? (
    <Icon status="info" isInline>
      <InProgressIcon />
    </Icon>
  ) : vm.status.phase === "Ready" ? (
    <Icon status="success" isInline>
      <CheckCircleIcon />
    </Icon>
  ) : vm.status.phase === "Failed" ? (
    <Icon status="danger" isInline>
      <ExclamationCircleIcon />
    </Icon>
  ) : vm.status.phase === "Paused" ? (
    <Icon status="warning" isInline>
      <PauseCircleIcon />
    </Icon>
  ) : (
    <Icon isInline>
      <OffIcon />
    </Icon>
  );
  return (
    <div className="osimg-vm-status" data-phase={vm.status.phase}>
      <span className="osimg-status">
        {icon} {view.label}
        {view.progress !== undefined ? ` ${Math.round(view.progress)}%` : ""}
      </span>
      {view.progress !== undefined ? (
        <Progress
          value={view.progress}
          size={ProgressSize.sm}
          measureLocation={ProgressMeasureLocation.none}
          aria-label={`Image import of ${vm.name}`}
          className="osimg-vm-progress"
        />
      ) : null}
      {showDetail && view.detail ? <div className="osimg-muted">{view.detail}</div> : null}
    </div>
  );
}
