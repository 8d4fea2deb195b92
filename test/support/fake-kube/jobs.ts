// A stand-in for Kubernetes' Job controller and kubelet: for each new Job a Pod is created from the
// template (labels job-name and controller-uid, owned by the Job), "run" by a PodRunner the test supplies
// (which may really run the pod's command on this machine), its output appended to the pod's log, and its
// exit code turned into the pod's phase and the Job's status: Complete on success; on failure another pod
// until backoffLimit is exceeded (Failed, BackoffLimitExceeded); Failed with DeadlineExceeded when
// activeDeadlineSeconds passes. Deleting the Job stops its running pod.
import { randomBytes } from "node:crypto";
import type { KubeObject } from "./resources.ts";
import type { FakeKube } from "./server.ts";

export interface PodRun {
  /** Appends to the pod's log (what `kubectl logs` shows). */
  log(text: string): void;
  /** Aborted at the Job's deadline or when the Job is deleted. */
  signal: AbortSignal;
}

/** Runs a pod; resolves with its container's exit code. */
export type PodRunner = (pod: KubeObject, run: PodRun) => Promise<number>;

type Json = Record<string, unknown>;
const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

export class JobController {
  readonly #fake: FakeKube;
  readonly #runner: PodRunner;
  readonly #running = new Map<string, AbortController>();
  #unsubscribe: (() => void) | undefined;

  constructor(fake: FakeKube, runner: PodRunner) {
    this.#fake = fake;
    this.#runner = runner;
  }

  get #jobs() {
    return this.#fake.cluster.type("batch", "v1", "jobs");
  }

  get #pods() {
    return this.#fake.cluster.type("", "v1", "pods");
  }

  start(): void {
    this.#unsubscribe = this.#fake.cluster.store.subscribe((event) => {
      if (event.resource !== "batch/v1/jobs") return;
      const key = `${event.object.metadata.namespace}/${event.object.metadata.name}`;
      if (event.type === "ADDED") void this.#run(event.object);
      if (event.type === "DELETED") this.#running.get(key)?.abort();
    });
  }

  stop(): void {
    this.#unsubscribe?.();
    for (const controller of this.#running.values()) controller.abort();
  }

  #setJobStatus(job: KubeObject, status: Json): void {
    const { namespace, name } = job.metadata;
    try {
      const current = this.#fake.cluster.get(this.#jobs, namespace, name as string);
      this.#fake.cluster.update(
        this.#jobs,
        namespace,
        name as string,
        { ...current, status: { ...(current.status as Json), ...status } },
        { subresource: "status" },
      );
    } catch {
      // Deleted meanwhile.
    }
  }

  #setPodStatus(pod: KubeObject, status: Json): void {
    const { namespace, name } = pod.metadata;
    try {
      const current = this.#fake.cluster.get(this.#pods, namespace, name as string);
      this.#fake.cluster.update(
        this.#pods,
        namespace,
        name as string,
        { ...current, status },
        { subresource: "status" },
      );
    } catch {
      // Deleted meanwhile.
    }
  }

  async #run(job: KubeObject): Promise<void> {
    const namespace = job.metadata.namespace as string;
    const name = job.metadata.name as string;
    const key = `${namespace}/${name}`;
    const spec = (job.spec ?? {}) as Json;
    const template = (spec.template ?? {}) as { metadata?: { labels?: Record<string, string> }; spec?: Json };
    const backoffLimit = typeof spec.backoffLimit === "number" ? spec.backoffLimit : 6;
    const controller = new AbortController();
    this.#running.set(key, controller);
    let deadlineHit = false;
    const deadline =
      typeof spec.activeDeadlineSeconds === "number"
        ? setTimeout(() => {
            deadlineHit = true;
            controller.abort();
          }, spec.activeDeadlineSeconds * 1000)
        : undefined;
    const started = now();
    this.#setJobStatus(job, { startTime: started, active: 1 });
    let failed = 0;
    try {
      for (;;) {
        const podName = `${name}-${randomBytes(3).toString("hex").slice(0, 5)}`;
        const labels = {
          ...template.metadata?.labels,
          "job-name": name,
          "batch.kubernetes.io/job-name": name,
          "controller-uid": job.metadata.uid as string,
        };
        const pod = this.#fake.cluster.create(this.#pods, namespace, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: {
            name: podName,
            namespace,
            labels,
            ownerReferences: [
              {
                apiVersion: "batch/v1",
                kind: "Job",
                name,
                uid: job.metadata.uid as string,
                controller: true,
              },
            ],
          },
          spec: template.spec ?? {},
        });
        this.#setPodStatus(pod, { phase: "Running", startTime: now() });
        let exitCode: number;
        try {
          exitCode = await this.#runner(pod, {
            log: (text) => this.#fake.appendPodLog(namespace, podName, text),
            signal: controller.signal,
          });
        } catch (error) {
          this.#fake.appendPodLog(namespace, podName, `${(error as Error).message}\n`);
          exitCode = 1;
        }
        const containers = ((template.spec?.containers ?? []) as { name: string }[]).map((c) => ({
          name: c.name,
          ready: false,
          restartCount: 0,
          state: {
            terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", finishedAt: now() },
          },
        }));
        this.#setPodStatus(pod, {
          phase: exitCode === 0 ? "Succeeded" : "Failed",
          containerStatuses: containers,
        });
        if (exitCode === 0) {
          this.#setJobStatus(job, {
            active: 0,
            succeeded: 1,
            completionTime: now(),
            conditions: [
              { type: "Complete", status: "True", lastProbeTime: now(), lastTransitionTime: now() },
            ],
          });
          return;
        }
        failed++;
        if (controller.signal.aborted || failed > backoffLimit) {
          const reason = deadlineHit
            ? "DeadlineExceeded"
            : controller.signal.aborted
              ? "Deleted"
              : "BackoffLimitExceeded";
          const message = deadlineHit
            ? "Job was active longer than specified deadline"
            : "Job has reached the specified backoff limit";
          this.#setJobStatus(job, {
            active: 0,
            failed,
            conditions: [
              {
                type: "Failed",
                status: "True",
                reason,
                message,
                lastProbeTime: now(),
                lastTransitionTime: now(),
              },
            ],
          });
          return;
        }
        this.#setJobStatus(job, { active: 1, failed });
      }
    } finally {
      clearTimeout(deadline);
      this.#running.delete(key);
    }
  }
}
