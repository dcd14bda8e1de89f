/**
 * GPT partition type GUIDs from the UAPI Discoverable Partitions Specification, so
 * systemd-gpt-auto-generator and bootloaders find partitions without an fstab.
 */
export const PartitionType = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  xbootldr: 'BC13C2FF-59E6-4262-A352-B275FD6F7172',
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  rootX86_64: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
  rootArm64: 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
  usrX86_64: '8484680C-9521-48C6-9C11-B0720656F69E',
  usrArm64: 'B0E01050-EE5F-4390-949A-9101B17104E9',
  home: '933AC7E1-2EB4-4F13-B844-0E14E2AEF915',
  srv: '3B8F8425-20E0-4F3B-907F-1A25A76F98E8',
  var: '4D21B016-B534-45C2-A9FB-5C16E091FD2D',
  tmp: '7EC6F557-3BC5-4ACA-B293-16EF5DF639D1',
  swap: '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F',
  linuxGeneric: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;

export type PartitionTypeName = keyof typeof PartitionType;

/** The root type for the machine's architecture, as bootc's installer picks it. */
export function rootTypeFor(arch: string = process.arch): string {
  return arch === 'arm64' ? PartitionType.rootArm64 : PartitionType.rootX86_64;
}
