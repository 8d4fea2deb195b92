// VMs recorded in SQLite (node:sqlite) in the data directory: what was asked for (the spec, without the
// password, which is kept in a 0600 file beside the VM's disk) and the provider's runtime facts (pid,
// ports, last known phase), so that a restarted server finds its VMs again; and each VM's events (the
// last MAX_EVENTS_PER_VM of them), which go with the VM.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { VmEvent, VmSpec } from "./model.ts";

export interface VmRecord<Runtime> {
  namespace: string;
  name: string;
  provider: string;
  /** The spec as created, without the password. */
  spec: Omit<VmSpec, "password"> & { hasPassword: boolean };
  createdAt: string;
  /** Changes each time the VM is provisioned anew; cloud-init runs once per instance id. */
  instanceId: string;
  runtime: Runtime;
}

interface Row {
  namespace: string;
  name: string;
  provider: string;
  spec: string;
  created_at: string;
  instance_id: string;
  runtime: string;
}

interface EventRow {
  id: number;
  time: string;
  first_time: string;
  type: VmEvent["type"];
  reason: string;
  message: string;
  count: number;
  source: string;
}

/** Events kept per VM: older ones are dropped as new ones come. */
export const MAX_EVENTS_PER_VM = 200;

/** An event to record: its time defaults to now, its count is kept by the log. */
export type NewVmEvent = Pick<VmEvent, "type" | "reason" | "message" | "source"> & { time?: string };

export class RecordExists extends Error {
  override name = "RecordExists";
}

export class VmRecords<Runtime> {
  readonly #db: DatabaseSync;
  readonly #maxEvents: number;

  constructor(path: string, options: { maxEventsPerVm?: number } = {}) {
    this.#maxEvents = options.maxEventsPerVm ?? MAX_EVENTS_PER_VM;
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.#db = new DatabaseSync(path);
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS vms (
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        provider TEXT NOT NULL,
        spec TEXT NOT NULL,
        created_at TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        runtime TEXT NOT NULL,
        PRIMARY KEY (namespace, name)
      ) STRICT;
      CREATE TABLE IF NOT EXISTS vm_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        time TEXT NOT NULL,
        first_time TEXT NOT NULL,
        type TEXT NOT NULL,
        reason TEXT NOT NULL,
        message TEXT NOT NULL,
        count INTEGER NOT NULL,
        source TEXT NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS vm_events_of_vm ON vm_events (namespace, name, id);
    `);
  }

  insert(record: VmRecord<Runtime>): void {
    try {
      this.#db
        .prepare(
          "INSERT INTO vms (namespace, name, provider, spec, created_at, instance_id, runtime) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .run(
          record.namespace,
          record.name,
          record.provider,
          JSON.stringify(record.spec),
          record.createdAt,
          record.instanceId,
          JSON.stringify(record.runtime),
        );
      // Events of an earlier VM of that name that a crash kept from being deleted are not this one's.
      this.#deleteEvents(record.namespace, record.name);
    } catch (error) {
      if (String((error as Error).message).includes("UNIQUE"))
        throw new RecordExists(`${record.namespace}/${record.name} exists`);
      throw error;
    }
  }

  get(namespace: string, name: string): VmRecord<Runtime> | undefined {
    const row = this.#db.prepare("SELECT * FROM vms WHERE namespace = ? AND name = ?").get(namespace, name) as
      | Row
      | undefined;
    return row && fromRow<Runtime>(row);
  }

  list(namespace?: string): VmRecord<Runtime>[] {
    const rows = (namespace === undefined
      ? this.#db.prepare("SELECT * FROM vms ORDER BY namespace, name").all()
      : this.#db
          .prepare("SELECT * FROM vms WHERE namespace = ? ORDER BY name")
          .all(namespace)) as unknown as Row[];
    return rows.map((r) => fromRow<Runtime>(r));
  }

  updateRuntime(namespace: string, name: string, runtime: Runtime): void {
    this.#db
      .prepare("UPDATE vms SET runtime = ? WHERE namespace = ? AND name = ?")
      .run(JSON.stringify(runtime), namespace, name);
  }

  delete(namespace: string, name: string): void {
    this.#transaction(() => {
      this.#db.prepare("DELETE FROM vms WHERE namespace = ? AND name = ?").run(namespace, name);
      this.#deleteEvents(namespace, name);
    });
  }

  /**
   * Records an event of a VM. The same event (type, reason, message, source) right after itself is not
   * a new one: the last one's count goes up and its time moves on. Keeps the newest MAX_EVENTS_PER_VM.
   */
  recordEvent(namespace: string, name: string, event: NewVmEvent): VmEvent {
    const time = event.time ?? new Date().toISOString();
    // Kubernetes' limit for an Event's message, for the same reason: a log tail must not fill the table.
    const message = event.message.length > 1024 ? `${event.message.slice(0, 1023)}…` : event.message;
    return this.#transaction(() => {
      const last = this.#db
        .prepare("SELECT * FROM vm_events WHERE namespace = ? AND name = ? ORDER BY id DESC LIMIT 1")
        .get(namespace, name) as EventRow | undefined;
      if (
        last &&
        last.type === event.type &&
        last.reason === event.reason &&
        last.message === message &&
        last.source === event.source
      ) {
        this.#db.prepare("UPDATE vm_events SET count = count + 1, time = ? WHERE id = ?").run(time, last.id);
        return eventOf({ ...last, count: last.count + 1, time });
      }
      this.#db
        .prepare(
          "INSERT INTO vm_events (namespace, name, time, first_time, type, reason, message, count, source) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
        )
        .run(namespace, name, time, time, event.type, event.reason, message, event.source);
      // The newest are kept: everything older than the last `max` goes.
      this.#db
        .prepare(
          `DELETE FROM vm_events WHERE namespace = ? AND name = ? AND id <= (
             SELECT id FROM vm_events WHERE namespace = ? AND name = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
        )
        .run(namespace, name, namespace, name, this.#maxEvents);
      return eventOf({ ...event, message, time, first_time: time, count: 1 });
    });
  }

  /** A VM's events, oldest first. */
  events(namespace: string, name: string): VmEvent[] {
    const rows = this.#db
      .prepare("SELECT * FROM vm_events WHERE namespace = ? AND name = ? ORDER BY id")
      .all(namespace, name) as unknown as EventRow[];
    return rows.map(eventOf);
  }

  #deleteEvents(namespace: string, name: string): void {
    this.#db.prepare("DELETE FROM vm_events WHERE namespace = ? AND name = ?").run(namespace, name);
  }

  #transaction<T>(work: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = work();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  close(): void {
    this.#db.close();
  }
}

function eventOf(row: Omit<EventRow, "id">): VmEvent {
  return {
    time: row.time,
    ...(row.first_time !== row.time ? { firstTime: row.first_time } : {}),
    type: row.type,
    reason: row.reason,
    message: row.message,
    count: row.count,
    source: row.source,
  };
}

function fromRow<Runtime>(row: Row): VmRecord<Runtime> {
  return {
    namespace: row.namespace,
    name: row.name,
    provider: row.provider,
    spec: JSON.parse(row.spec) as VmRecord<Runtime>["spec"],
    createdAt: row.created_at,
    instanceId: row.instance_id,
    runtime: JSON.parse(row.runtime) as Runtime,
  };
}
