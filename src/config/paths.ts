// Where osimg keeps its data, and where the files it ships are.
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The catalog shipped with osimg: current cloud images of the major distributions. */
export const BUILTIN_CATALOG = join(PROJECT_ROOT, "catalog", "images.yaml");

/** $OSIMG_DATA_DIR, else $XDG_DATA_HOME/osimg, else ~/.local/share/osimg. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.OSIMG_DATA_DIR) return env.OSIMG_DATA_DIR;
  return join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "osimg");
}
