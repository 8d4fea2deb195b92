// Authentication on the command line: the `osimg serve` flags (--auth none|token|oidc|kubernetes and
// their settings), `osimg token create|list|revoke` (the static token file, changed in place: a running
// server picks the change up), and `osimg login|logout|whoami` (a token saved per server in
// ~/.config/osimg/credentials, 0600).
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { ROLES, type Role } from "../auth/policy-table.ts";
import { AUTH_MODES, type AuthSettings } from "../auth/setup.ts";
import { forgetToken, storeToken } from "../auth/stored-credentials.ts";
import { TokenFile, tokenFilePath } from "../auth/tokens.ts";
import { defaultDataDir } from "../config/paths.ts";
import { type ObjectRef, parseObjectRef } from "../kube/client.ts";
import type { ServeOptions } from "../server/serve.ts";
import { ApiClient, handled } from "./client.ts";
import { renderTable } from "./table.ts";

export interface ServeAuthFlags {
  auth: AuthSettings["mode"];
  tokenFile?: string;
  oidcIssuer?: string;
  oidcAudience?: string;
  oidcRolesClaim?: string;
  oidcGroupsClaim?: string;
  oidcGroupPattern?: string;
  oidcRolePrefix?: string;
  oidcClientId?: string;
  kubeconfig?: string;
  allowedOrigin?: string[];
  trustProxy?: string[];
  quotaFile?: string;
  quotaConfigmap?: ObjectRef;
  auditLog?: string;
}

function configMapRef(value: string): ObjectRef {
  try {
    return parseObjectRef(value, "--quota-configmap");
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function origin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`"${value}" is not an origin such as https://osimg.example.com`);
  }
  if (url.origin !== value.replace(/\/$/, ""))
    throw new InvalidArgumentError(`"${value}": an origin is scheme://host[:port], e.g. ${url.origin}`);
  return url.origin;
}

/** The flags of `osimg serve` that choose how callers authenticate, and the tenancy settings. */
export function addServeAuthOptions(serve: Command): Command {
  return serve
    .addOption(
      new Option("--auth <mode>", "how callers authenticate (none: loopback only, no checks)")
        .choices(AUTH_MODES as string[])
        .default(process.env.OSIMG_AUTH || "token"),
    )
    .option("--token-file <path>", "--auth token: the token file (default <data-dir>/tokens.json)")
    .option("--oidc-issuer <url>", "--auth oidc: the issuer (its /.well-known/openid-configuration)")
    .option("--oidc-audience <id>", "--auth oidc: the audience tokens must name (the client id)")
    .option("--oidc-roles-claim <path>", "--auth oidc: claim with role names", "realm_access.roles")
    .option("--oidc-groups-claim <path>", "--auth oidc: claim with group names", "groups")
    .option("--oidc-group-pattern <pattern>", "--auth oidc: group → project and role", "{project}/{role}")
    .option(
      "--oidc-client-id <id>",
      "--auth oidc: the UI's public client for browser logins (default: the audience)",
    )
    .option(
      "--oidc-role-prefix <prefix>",
      "--auth oidc: role names are <prefix>admin|member|viewer",
      "osimg-",
    )
    .option(
      "--allowed-origin <origin...>",
      "origins besides this server's own allowed to send changes (a proxy's public address)",
      (value: string, previous: string[] = []) => [...previous, origin(value)],
    )
    .option(
      "--trust-proxy <address...>",
      "reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the client, for rate limits and audit",
    )
    .option("--quota-file <path>", "project quotas (default <data-dir>/quotas.yaml when present)")
    .option(
      "--quota-configmap <namespace/name>",
      'project quotas from this ConfigMap\'s data["quotas.yaml"] (Kubernetes)',
      configMapRef,
    )
    .option("--audit-log <path>", "the audit log (default <data-dir>/audit/audit.log)");
}

export function serveAuthSettings(flags: ServeAuthFlags): Pick<ServeOptions, "auth" | "tenancy"> {
  let auth: AuthSettings;
  switch (flags.auth) {
    case "none":
      auth = { mode: "none" };
      break;
    case "token":
      auth = { mode: "token", ...(flags.tokenFile ? { tokenFile: flags.tokenFile } : {}) };
      break;
    case "oidc":
      if (!flags.oidcIssuer || !flags.oidcAudience)
        throw new InvalidArgumentError("--auth oidc needs --oidc-issuer URL and --oidc-audience CLIENT_ID");
      auth = {
        mode: "oidc",
        issuer: flags.oidcIssuer,
        audience: flags.oidcAudience,
        rolesClaim: flags.oidcRolesClaim,
        groupsClaim: flags.oidcGroupsClaim,
        groupPattern: flags.oidcGroupPattern,
        rolePrefix: flags.oidcRolePrefix,
        ...(flags.oidcClientId ? { clientId: flags.oidcClientId } : {}),
      };
      break;
    case "kubernetes":
      auth = { mode: "kubernetes", kubeconfig: flags.kubeconfig };
      break;
  }
  return {
    auth,
    tenancy: {
      allowedOrigins: flags.allowedOrigin,
      trustProxy: flags.trustProxy,
      ...(flags.auditLog ? { audit: { path: flags.auditLog } } : {}),
      quota: {
        file: flags.quotaFile,
        ...(flags.quotaConfigmap
          ? { configMap: { ...flags.quotaConfigmap, kubeconfig: flags.kubeconfig } }
          : {}),
      },
    },
  };
}

function role(value: string): Role {
  if (!(ROLES as readonly string[]).includes(value))
    throw new InvalidArgumentError(`a role is one of ${ROLES.join(", ")}`);
  return value as Role;
}

interface TokenFlags {
  dataDir: string;
  tokenFile?: string;
}

const tokenFile = (flags: TokenFlags) => new TokenFile(flags.tokenFile ?? tokenFilePath(flags.dataDir));

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    // One pasted line; the token is not echoed back by us, but the terminal shows what is typed.
    const { createInterface } = await import("node:readline/promises");
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    try {
      return (await rl.question("token: ")).trim();
    } finally {
      rl.close();
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8").trim();
}

export function registerAuthCommands(program: Command): void {
  const token = program
    .command("token")
    .description("the static API tokens of `osimg serve --auth token` (stored hashed in the data directory)")
    .option("--data-dir <dir>", "where osimg keeps its data", defaultDataDir())
    .option("--token-file <path>", "the token file (default <data-dir>/tokens.json)");

  token
    .command("create")
    .description("create a token and print it (once: it is stored only as a hash)")
    .requiredOption("--role <role>", `${ROLES.join(" | ")}`, role)
    .option("--project <name...>", "a project (namespace) the token may work in; '*' for every project")
    .option("--name <name>", "a name to tell it by (default: role-projects)")
    .action(async (options: { role: Role; project?: string[]; name?: string }, command: Command) => {
      const projects = options.project ?? [];
      const name = options.name ?? [options.role, ...projects.map((p) => (p === "*" ? "all" : p))].join("-");
      try {
        const created = await tokenFile(command.optsWithGlobals<TokenFlags>()).create({
          name,
          role: options.role,
          projects,
        });
        process.stderr.write(
          `created token "${created.info.name}" (id ${created.info.id}); it is shown this once:\n`,
        );
        process.stdout.write(`${created.token}\n`);
      } catch (error) {
        process.stderr.write(`error: ${(error as Error).message}\n`);
        process.exitCode = 1;
      }
    });

  token
    .command("list")
    .description("list tokens (never their secrets)")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }, command: Command) => {
      const tokens = await tokenFile(command.optsWithGlobals<TokenFlags>()).list();
      if (options.json) {
        process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
        return;
      }
      const rows = tokens.map((t) => [t.id, t.name, t.role, t.projects.join(",") || "(all)", t.createdAt]);
      process.stdout.write(`${renderTable(["ID", "NAME", "ROLE", "PROJECTS", "CREATED"], rows)}\n`);
    });

  token
    .command("revoke")
    .description("revoke a token by id or name (a running server refuses it within about a second)")
    .argument("<id-or-name>")
    .action(async (idOrName: string, _options: unknown, command: Command) => {
      const revoked = await tokenFile(command.optsWithGlobals<TokenFlags>()).revoke(idOrName);
      if (!revoked) {
        process.stderr.write(`error: no token with id or name "${idOrName}" (see osimg token list)\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`revoked ${revoked.id} (${revoked.name})\n`);
    });

  const serverOption = (command: Command) =>
    command.option("--server <url>", "the osimg server", process.env.OSIMG_SERVER ?? "http://127.0.0.1:8080");

  serverOption(program.command("login"))
    .description("check a token against the server and save it for the CLI (~/.config/osimg/credentials)")
    .option("--token <token>", "the token (default: read from standard input; prefer that: argv is visible)")
    .action(
      handled(async (options: { server: string; token?: string }) => {
        const secret = options.token ?? (await readStdin());
        if (!secret) {
          process.stderr.write("error: no token given (pipe it in, or --token)\n");
          process.exitCode = 1;
          return;
        }
        const api = new ApiClient({ server: options.server, token: secret });
        const me = await api.request<{
          name: string;
          clusterRole?: string;
          projects: Record<string, string>;
        }>("GET", "/api/v1/whoami");
        await storeToken(api.server, secret);
        process.stdout.write(`logged in to ${api.server} as ${me.name} (${describeRoles(me)})\n`);
      }),
    );

  serverOption(program.command("logout"))
    .description("forget the token saved for the server")
    .action(async (options: { server: string }) => {
      const forgotten = await forgetToken(options.server);
      process.stdout.write(
        forgotten ? `logged out of ${options.server}\n` : `no saved login for ${options.server}\n`,
      );
    });

  serverOption(program.command("whoami"))
    .description("who the server takes you for (OSIMG_TOKEN, else the saved login)")
    .action(
      handled(async (options: { server: string }) => {
        const api = new ApiClient({ server: options.server, token: process.env.OSIMG_TOKEN });
        const me = await api.request<{
          name: string;
          via: string;
          clusterRole?: string;
          projects: Record<string, string>;
        }>("GET", "/api/v1/whoami");
        process.stdout.write(`${me.name} via ${me.via}: ${describeRoles(me)}\n`);
      }),
    );
}

function describeRoles(me: { clusterRole?: string; projects: Record<string, string> }): string {
  const parts = me.clusterRole ? [`${me.clusterRole} in every project`] : [];
  for (const [project, r] of Object.entries(me.projects)) parts.push(`${r} in ${project}`);
  return parts.join(", ") || "no projects";
}
