// Tenancy for a server: the guard of the chosen auth mode, the audit log, the quota source, and the
// hooks that put them in front of every route. `osimg serve` defaults to the token mode; `--auth none`
// runs only on loopback, with a loud warning.
import { chmod } from "node:fs/promises";
import type { KubeConfig } from "@kubernetes/client-node";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { installAudit } from "../audit/hook.ts";
import { AuditLog, auditLogPath } from "../audit/log.ts";
import { loadKubeConfig, type ObjectRef } from "../kube/client.ts";
import { QuotaConfigMap, QuotaFile, type QuotaSource } from "../quota/guard.ts";
import { Guard, type RateLimits } from "./guard.ts";
import { KubernetesAuthenticator } from "./kubernetes.ts";
import { OidcAuthenticator, type OidcOptions } from "./oidc.ts";
import type { AuthMode } from "./principal.ts";
import { installSecurity } from "./security.ts";
import { TokenAuthenticator, TokenFile, tokenFilePath } from "./tokens.ts";

export const AUTH_MODES: readonly AuthMode[] = ["none", "token", "oidc", "kubernetes"];

export type AuthSettings =
  | { mode: "none" /** tests: no warning */; quiet?: boolean }
  | {
      mode: "token";
      tokenFile?: string;
      /** Shown the admin token created on the first start; default: printed to stderr. */
      onFirstToken?: (token: string, file: string) => void;
    }
  | ({ mode: "oidc" } & OidcOptions)
  | {
      mode: "kubernetes";
      kubeConfig?: KubeConfig;
      kubeconfig?: string;
      /** The VM provider calls Kubernetes with the user's token, so VM actions need no review here. */
      delegate?: boolean;
      audiences?: string[];
    };

export interface TenancyOptions {
  auth: AuthSettings;
  dataDir: string;
  /** The address the server listens on: --auth none is refused unless it is loopback. */
  host: string;
  logger: Logger;
  rateLimits?: Partial<RateLimits>;
  allowedOrigins?: string[];
  /** Reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the client. */
  trustProxy?: string[];
  /** The audit log; default <data-dir>/audit/audit.log, 10 MiB × 5. */
  audit?: { path?: string; maxBytes?: number; keep?: number };
  /** Quotas from a file (default <data-dir>/quotas.yaml, if present) or a ConfigMap. */
  quota?: { file?: string; configMap?: ObjectRef & { kubeConfig?: KubeConfig; kubeconfig?: string } };
}

export interface Tenancy {
  guard: Guard;
  audit: AuditLog;
  quota: QuotaSource;
  allowedOrigins: readonly string[];
  trustProxy: readonly string[];
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const NONE_WARNING = [
  "",
  "!!! osimg runs with --auth none: NO AUTHENTICATION. Anyone who reaches this address can create and",
  "!!! delete VMs, open their consoles and edit the catalog. Use it only on a machine of your own.",
  "",
].join("\n");

function printFirstToken(token: string, file: string): void {
  process.stderr.write(
    [
      "",
      "=== osimg: created the token file with an admin token. It is shown this once and never again:",
      "",
      `    ${token}`,
      "",
      `    (stored hashed in ${file}; log in with \`osimg login\`, or paste it into the UI;`,
      "     more tokens: osimg token create --role member --project NAME)",
      "",
    ].join("\n"),
  );
}

async function guardFor(options: TenancyOptions): Promise<Guard> {
  const { auth, rateLimits } = options;
  switch (auth.mode) {
    case "none": {
      if (!isLoopback(options.host))
        throw new Error(
          `--auth none is refused on ${options.host}: without authentication osimg listens only on loopback (--host 127.0.0.1)`,
        );
      if (!auth.quiet) {
        process.stderr.write(`${NONE_WARNING}\n`);
        options.logger.warn("authentication is off (--auth none): every request is allowed");
      }
      return Guard.none({ rateLimits });
    }
    case "token": {
      const file = new TokenFile(auth.tokenFile ?? tokenFilePath(options.dataDir));
      const first = await file.initialize();
      if (first) (auth.onFirstToken ?? printFirstToken)(first, file.path);
      await chmod(file.path, 0o600); // a copy made by hand may have been left readable by others
      const tokens = new TokenAuthenticator(file);
      await tokens.start();
      options.logger.info({ tokenFile: file.path }, "authentication: static tokens");
      return Guard.forTokens(tokens, { rateLimits });
    }
    case "oidc": {
      const { mode: _mode, ...oidc } = auth;
      if (!oidc.issuer || !oidc.audience)
        throw new Error("--auth oidc needs --oidc-issuer URL and --oidc-audience CLIENT_ID");
      if (oidc.issuer.startsWith("http:") && !isLoopback(new URL(oidc.issuer).hostname))
        options.logger.warn({ issuer: oidc.issuer }, "the OIDC issuer is not on https");
      options.logger.info({ issuer: oidc.issuer, audience: oidc.audience }, "authentication: OIDC");
      return Guard.forOidc(new OidcAuthenticator(oidc), { rateLimits });
    }
    case "kubernetes": {
      const kubeConfig = auth.kubeConfig ?? loadKubeConfig({ kubeconfig: auth.kubeconfig });
      const delegate = auth.delegate ?? false;
      options.logger.info(
        { delegate },
        "authentication: Kubernetes TokenReview; authorization: Kubernetes RBAC",
      );
      return Guard.forKubernetes(new KubernetesAuthenticator(kubeConfig, { audiences: auth.audiences }), {
        delegate,
        rateLimits,
      });
    }
  }
}

function quotaSource(options: TenancyOptions): QuotaSource {
  const configMap = options.quota?.configMap;
  if (configMap) {
    const kubeConfig = configMap.kubeConfig ?? loadKubeConfig({ kubeconfig: configMap.kubeconfig });
    return new QuotaConfigMap(kubeConfig, configMap);
  }
  return new QuotaFile(options.quota?.file ?? `${options.dataDir}/quotas.yaml`, options.logger);
}

export async function setupTenancy(options: TenancyOptions): Promise<Tenancy> {
  const quota = quotaSource(options);
  await quota.config(); // a broken quota file stops the start, with its line and column
  const guard = await guardFor(options);
  const audit = new AuditLog({
    path: options.audit?.path ?? auditLogPath(options.dataDir),
    maxBytes: options.audit?.maxBytes,
    keep: options.audit?.keep,
    logger: options.logger,
  });
  await audit.open();
  return {
    guard,
    audit,
    quota,
    allowedOrigins: options.allowedOrigins ?? [],
    trustProxy: options.trustProxy ?? [],
    async close() {
      guard.close();
      await audit.close();
    },
  };
}

/** Before the routes are registered: hardening hooks, body limits, the audit of every response. */
export function installTenancy(app: FastifyInstance, tenancy: Tenancy): void {
  installSecurity(app, { allowedOrigins: tenancy.allowedOrigins });
  installAudit(app, tenancy.audit);
}
