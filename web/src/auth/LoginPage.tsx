// The login page. The OIDC mode signs in at the issuer (authorization code with PKCE, see oidc.ts), with
// pasting an ID or access token as the alternative; the token mode takes an osimg token (`osimg token
// create`, or the admin token printed at the first start); the kubernetes mode a token the cluster
// accepts. A pasted token is checked with the server (GET /api/v1/whoami) before it is kept.
import {
  ActionGroup,
  Alert,
  Button,
  Form,
  FormGroup,
  FormHelperText,
  HelperText,
  HelperTextItem,
  LoginPage as PfLoginPage,
  TextInput,
} from "@patternfly/react-core";
import { type FormEvent, useState } from "react";
import { HttpError } from "../api/http.ts";
import { type AuthConfig, fetchWhoAmI, type WhoAmI } from "./api.ts";
import { canRedirect, startLogin } from "./oidc.ts";

function hintFor(config: AuthConfig): string {
  switch (config.mode) {
    case "oidc":
      return `Paste an ID or access token issued by ${config.issuer ?? "the identity provider"} for ${config.audience ?? "osimg"}.`;
    case "kubernetes":
      return "Paste a bearer token the cluster accepts (your OIDC token, or `kubectl create token …`).";
    default:
      return "Paste an osimg token: `osimg token create --role member --project NAME`, or the admin token printed when the server first started.";
  }
}

export function LoginPage({
  initialError,
  config,
  onLogin,
}: {
  config: AuthConfig;
  /** Why the last login failed (a refused OIDC login, back from the issuer). */
  initialError?: string;
  onLogin: (token: string, me: WhoAmI) => void;
}) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(initialError);
  const redirect = canRedirect(config);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const candidate = token.trim();
    if (!candidate) {
      setError("Paste a token first.");
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      onLogin(candidate, await fetchWhoAmI(candidate));
    } catch (e) {
      setError(e instanceof HttpError ? e.body.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  const issuerName = config.issuer ? new URL(config.issuer).host : "the identity provider";
  return (
    <PfLoginPage
      brandImgSrc="/favicon.svg"
      brandImgAlt="osimg"
      brandImgProps={{ alt: "osimg", widths: { default: "64px" }, heights: { default: "64px" } }}
      loginTitle="Sign in to osimg"
      loginSubtitle={redirect ? `with your ${issuerName} account` : "with an access token"}
      textContent="OS images for virtual machines: the catalog, image intake, VMs."
    >
      {error ? <Alert variant="danger" isInline isPlain title={error} /> : null}
      <Form onSubmit={submit} noValidate>
        {redirect ? (
          <ActionGroup>
            <Button
              type="button"
              variant="primary"
              isBlock
              onClick={() => startLogin(config).catch((e: unknown) => setError(String(e)))}
            >
              Sign in with {issuerName}
            </Button>
          </ActionGroup>
        ) : null}
        <FormGroup
          label={redirect ? "Or paste a token" : "Access token"}
          isRequired={!redirect}
          fieldId="osimg-login-token"
        >
          <TextInput
            id="osimg-login-token"
            type="password"
            value={token}
            onChange={(_event, value) => setToken(value)}
            validated={error ? "error" : "default"}
            autoComplete="off"
            spellCheck={false}
            autoFocus={!redirect}
          />
          <FormHelperText>
            <HelperText>
              <HelperTextItem>{hintFor(config)}</HelperTextItem>
            </HelperText>
          </FormHelperText>
        </FormGroup>
        <ActionGroup>
          <Button
            type="submit"
            variant={redirect ? "secondary" : "primary"}
            isBlock
            isLoading={busy}
            isDisabled={busy}
          >
            Sign in{redirect ? " with the token" : ""}
          </Button>
        </ActionGroup>
      </Form>
    </PfLoginPage>
  );
}
