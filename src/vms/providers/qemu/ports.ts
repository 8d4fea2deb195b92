// A free TCP port on 127.0.0.1 for a VM's SSH forward. The port is free when this returns; QEMU binds it a
// moment later, so a start that fails with "could not set up host forwarding" should pick another and retry.
import { createServer } from "node:net";

export function findFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("could not read the port of a listening socket"));
      });
    });
  });
}
