// VMs recorded in SQLite (node:sqlite) in the data directory: what was asked for (the spec, without the
// password, which is kept in a 0600 file beside the VM's disk) and the provider's runtime facts (pid,
// ports, last known phase), so that a restarted server finds its VMs again.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { VmSpec } from "./model.ts";

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

export class RecordExists extends Error {
  override name = "RecordExists";
}

export class VmRecords<Runtime> {
  readonly #db: DatabaseSync;

  constructor(path: string) {
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
    this.#db.prepare("DELETE FROM vms WHERE namespace = ? AND name = ?").run(namespace, name);
  }

  close(): void {
    this.#db.close();
  }
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
