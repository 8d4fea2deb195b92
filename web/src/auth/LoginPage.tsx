// The login page: paste a token. The token mode takes an osimg token (`osimg token create`, or the admin
// token printed at the first start); the OIDC mode an ID or access token of the configured issuer (this
// page has no redirect to the issuer: the UI would need a registered public client and a callback, which
// osimg does not configure); the kubernetes mode a token the cluster accepts. The token is checked with
// the server (GET /api/v1/whoami) before it is kept.
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
  config,
  onLogin,
}: {
  config: AuthConfig;
  onLogin: (token: string, me: WhoAmI) => void;
}) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();

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

  return (
    <PfLoginPage
      brandImgSrc="/favicon.svg"
      brandImgAlt="osimg"
      brandImgProps={{ alt: "osimg", widths: { default: "64px" }, heights: { default: "64px" } }}
      loginTitle="Sign in to osimg"
      loginSubtitle={
        config.mode === "oidc" ? "with a token of your identity provider" : "with an access token"
      }
      textContent="OS images for virtual machines: the catalog, image intake, VMs."
    >
      <Form onSubmit={submit} noValidate>
        {error ? <Alert variant="danger" isInline isPlain title={error} /> : null}
        <FormGroup label="Access token" isRequired fieldId="osimg-login-token">
          <TextInput
            id="osimg-login-token"
            type="password"
            value={token}
            onChange={(_event, value) => setToken(value)}
            validated={error ? "error" : "default"}
            autoComplete="off"
            spellCheck={false}
            autoFocus
          />
          <FormHelperText>
            <HelperText>
              <HelperTextItem>{hintFor(config)}</HelperTextItem>
            </HelperText>
          </FormHelperText>
        </FormGroup>
        <ActionGroup>
          <Button type="submit" variant="primary" isBlock isLoading={busy} isDisabled={busy}>
            Sign in
          </Button>
        </ActionGroup>
      </Form>
    </PfLoginPage>
  );
}
