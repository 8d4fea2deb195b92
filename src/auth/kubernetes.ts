// The kubernetes mode (token pass-through): the caller's bearer token is whatever the cluster accepts
// (a Keycloak OIDC token in Kube-DC, a ServiceAccount token); it is authenticated by a TokenReview and
// Kubernetes RBAC decides. Actions whose Kubernetes calls carry the user's token (the VM routes, when the
// provider passes tokens through) need nothing more; the others are asked as SubjectAccessReviews, with
// the resource attributes of the policy table (osimg's own as virtual resources of the osimg.io group).
// osimg's service account needs `system:auth-delegator` (tokenreviews, subjectaccessreviews: create).
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import { kubeFailure } from "../kube/client.ts";
import type { KubeCheck } from "./policy-table.ts";
import type { Principal } from "./principal.ts";

export class KubernetesUnavailable extends Error {
  override name = "KubernetesUnavailable";
}

export type ReviewResult = { ok: true; principal: Principal } | { ok: false; reason: string };

const REVIEW_TTL_MS = 10_000;

export class KubernetesAuthenticator {
  readonly #authn: AuthenticationV1Api;
  readonly #authz: AuthorizationV1Api;
  readonly #audiences: string[] | undefined;
  /** subject|namespace|attributes → allowed, for a few seconds: a page load asks the same many times. */
  readonly #reviews = new Map<string, { allowed: boolean; until: number }>();

  constructor(kubeConfig: KubeConfig, options: { audiences?: string[] } = {}) {
    this.#authn = kubeConfig.makeApiClient(AuthenticationV1Api);
    this.#authz = kubeConfig.makeApiClient(AuthorizationV1Api);
    this.#audiences = options.audiences;
  }

  async authenticate(token: string): Promise<ReviewResult> {
    let status: Awaited<ReturnType<AuthenticationV1Api["createTokenReview"]>>["status"];
    try {
      const review = await this.#authn.createTokenReview({
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token, ...(this.#audiences ? { audiences: this.#audiences } : {}) },
        },
      });
      status = review.status;
    } catch (error) {
      throw new KubernetesUnavailable(`TokenReview failed: ${kubeFailure(error).message}`);
    }
    if (!status?.authenticated || !status.user?.username)
      return {
        ok: false,
        reason: status?.error ? `the cluster refused the token` : "the token is not valid",
      };
    return {
      ok: true,
      principal: {
        subject: `k8s:${status.user.username}`,
        name: status.user.username,
        via: "kubernetes",
        projects: {},
        groups: status.user.groups ?? [],
        bearerToken: token,
      },
    };
  }

  /** Asks RBAC whether the principal may do `check` (in `namespace`); answers cached for 10 s. */
  async allowed(principal: Principal, check: KubeCheck, namespace: string | undefined): Promise<boolean> {
    const user = principal.name;
    const key = JSON.stringify([user, principal.groups, namespace, check]);
    const cached = this.#reviews.get(key);
    if (cached && cached.until > Date.now()) return cached.allowed;
    let allowed: boolean;
    try {
      const review = await this.#authz.createSubjectAccessReview({
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user,
            groups: [...(principal.groups ?? [])],
            resourceAttributes: {
              verb: check.verb,
              group: check.group,
              resource: check.resource,
              ...(check.subresource ? { subresource: check.subresource } : {}),
              ...(namespace ? { namespace } : {}),
            },
          },
        },
      });
      allowed = review.status?.allowed === true;
    } catch (error) {
      throw new KubernetesUnavailable(`SubjectAccessReview failed: ${kubeFailure(error).message}`);
    }
    if (this.#reviews.size > 10_000) this.#reviews.clear();
    this.#reviews.set(key, { allowed, until: Date.now() + REVIEW_TTL_MS });
    return allowed;
  }
}
