// One error shape for every route: { error, message, field?, hint?, details? }.
import type { FastifyError, FastifyInstance } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { z } from "zod";

export const ErrorBody = z.object({
  error: z.string(),
  message: z.string(),
  field: z.string().optional(),
  hint: z.string().optional(),
  details: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

export class ApiError extends Error {
  readonly statusCode: number;
  readonly body: ErrorBody;
  /** Response headers that belong to the error (WWW-Authenticate, Retry-After). */
  headers: Record<string, string> = {};

  constructor(
    statusCode: number,
    code: string,
    message: string,
    extra: Partial<Omit<ErrorBody, "error" | "message">> = {},
  ) {
    super(message);
    this.statusCode = statusCode;
    this.body = { error: code, message, ...extra };
  }
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    if (error instanceof ApiError)
      return reply.status(error.statusCode).headers(error.headers).send(error.body);
    if (hasZodFastifySchemaValidationErrors(error)) {
      const details = error.validation.map((v) => ({
        field: [error.validationContext, ...String(v.instancePath).split("/").filter(Boolean)].join("."),
        message: v.message ?? "invalid",
      }));
      return reply.status(400).send({
        error: "invalid_request",
        message: details.map((d) => `${d.field}: ${d.message}`).join("; "),
        details,
      });
    }
    const status = error.statusCode ?? 500;
    if (status >= 500) request.log.error({ err: error }, "request failed");
    return reply
      .status(status)
      .send({ error: error.code ?? "error", message: status >= 500 ? "internal error" : error.message });
  });
  app.setNotFoundHandler((request, reply) => {
    reply
      .status(404)
      .send({ error: "not_found", message: `no route ${request.method} ${request.url.split("?")[0]}` });
  });
}
