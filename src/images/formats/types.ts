// What a format detector reports: the format, sizes, format-specific details (shown as they are in
// --json output) and the facts that matter for safety, which the policy (../policy.ts) turns into a verdict.
import type { ByteMap } from "../bytes.ts";

export const DISK_FORMATS = ["qcow2", "raw", "vmdk", "vhd", "vhdx", "vdi", "iso"] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];
export const COMPRESSIONS = ["gzip", "xz", "zstd", "bzip2"] as const;
export type Compression = (typeof COMPRESSIONS)[number];
/** Not disk images, recognized to say so plainly (an HTML error page served with 200 is common). */
export const NOT_IMAGES = ["html", "tar"] as const;
export type NotImage = (typeof NOT_IMAGES)[number];
export type DetectedFormat = DiskFormat | Compression | NotImage;

/** Facts a detector found that the safety policy judges. */
export const RISK_KINDS = [
  "backing_file",
  "data_file",
  "encrypted",
  "unknown_features",
  "corrupt",
  "dirty",
  "vmdk_extent",
  "vmdk_create_type",
  "invalid_header",
  "unsupported_version",
  "not_a_disk_image",
] as const;
export type RiskKind = (typeof RISK_KINDS)[number];

export interface Risk {
  kind: RiskKind;
  message: string;
}

export interface Detection {
  format: DetectedFormat;
  /** The size of the disk the guest sees, in bytes. */
  virtualSize?: number;
  clusterSize?: number;
  details: Record<string, unknown>;
  risks: Risk[];
  notes: string[];
}

/**
 * A detector: null when the format's signature is absent, a Detection when it is present.
 * May throw NeedBytes (fetch and call again) or UnreadableBytes.
 */
export type Detector = (bytes: ByteMap) => Detection | null;
