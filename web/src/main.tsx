import "@patternfly/react-core/dist/styles/base.css";
import "./app.css";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App.tsx";
import { isRetryable } from "./api/http.ts";
import { AuthGate } from "./auth/AuthGate.tsx";
import { followSystemColorScheme } from "./theme.ts";

followSystemColorScheme();

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A refusal (4xx) says why; asking again would not change it.
      retry: (count, error) => count < 2 && isRetryable(error),
      refetchOnWindowFocus: true,
    },
  },
});

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root element");
createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <AuthGate>
        <App />
      </AuthGate>
    </QueryClientProvider>
  </StrictMode>,
);
