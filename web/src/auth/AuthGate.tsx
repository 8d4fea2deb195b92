// In front of the whole UI: asks the server how to log in; with authentication on, shows the login page
// until a token is accepted, and again whenever the server refuses the session's token (401: revoked or
// expired). The URL stays as it was, so the page asked for opens after the login. Cached answers of the
// previous session are dropped on every change of identity.
import { Bullseye, Spinner } from "@patternfly/react-core";
import { useQueryClient } from "@tanstack/react-query";
import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from "react";
import { type AuthConfig, fetchAuthConfig, fetchWhoAmI, type WhoAmI } from "./api.ts";
import { LoginPage } from "./LoginPage.tsx";
import { CALLBACK_PATH, completeLogin } from "./oidc.ts";
import { clearToken, currentToken, onUnauthorized, setToken } from "./session.ts";

export interface Session {
  config: AuthConfig;
  /** Undefined with --auth none. */
  me?: WhoAmI;
  signOut(): void;
}

const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session | undefined {
  return useContext(SessionContext);
}

type State =
  | { kind: "loading" }
  | { kind: "failed"; message: string }
  | { kind: "login"; config: AuthConfig; error?: string }
  | { kind: "in"; config: AuthConfig; me?: WhoAmI };

export function AuthGate({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const [state, setState] = useState<State>({ kind: "loading" });

  useEffect(() => {
    let cancelled = false;
    (async () => {
      try {
        const config = await fetchAuthConfig();
        if (config.mode === "none") return !cancelled && setState({ kind: "in", config });
        if (location.pathname === CALLBACK_PATH) {
          // Back from the identity provider: finish the login, then open the page that was asked for.
          try {
            const { token, me, returnTo } = await completeLogin();
            setToken(token);
            history.replaceState(null, "", returnTo);
            return !cancelled && setState({ kind: "in", config, me });
          } catch (error) {
            history.replaceState(null, "", "/");
            const message = error instanceof Error ? error.message : String(error);
            return !cancelled && setState({ kind: "login", config, error: message });
          }
        }
        if (!currentToken()) return !cancelled && setState({ kind: "login", config });
        try {
          const me = await fetchWhoAmI();
          if (!cancelled) setState({ kind: "in", config, me });
        } catch {
          clearToken();
          if (!cancelled) setState({ kind: "login", config });
        }
      } catch (error) {
        if (!cancelled)
          setState({ kind: "failed", message: error instanceof Error ? error.message : String(error) });
      }
    })();
    return () => {
      cancelled = true;
    };
  }, []);

  const toLogin = useCallback(() => {
    clearToken();
    queryClient.clear();
    setState((s) => (s.kind === "in" && s.config.mode !== "none" ? { kind: "login", config: s.config } : s));
  }, [queryClient]);

  useEffect(() => onUnauthorized(toLogin), [toLogin]);

  switch (state.kind) {
    case "loading":
      return (
        <Bullseye>
          <Spinner aria-label="Loading" />
        </Bullseye>
      );
    case "failed":
      return (
        <Bullseye>
          <p role="alert">The osimg server cannot be reached: {state.message}</p>
        </Bullseye>
      );
    case "login":
      return (
        <LoginPage
          config={state.config}
          initialError={state.error}
          onLogin={(token, me) => {
            setToken(token);
            queryClient.clear();
            setState({ kind: "in", config: state.config, me });
          }}
        />
      );
    case "in":
      return (
        <SessionContext.Provider value={{ config: state.config, me: state.me, signOut: toLogin }}>
          {children}
        </SessionContext.Provider>
      );
  }
}
