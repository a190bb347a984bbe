/** A UID (PS3.5 §9): digits and dots, at most 64 characters. Branded so unchecked strings don't pass. */
export type Uid = string & { readonly __brand: 'Uid' };

const uidPattern = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

/** PS3.5 §9.1: components of digits without leading zeros, separated by dots, at most 64 characters. */
export function isValidUid(text: string): text is Uid {
  return text.length > 0 && text.length <= 64 && uidPattern.test(text);
}

/** Strips the trailing NUL or space padding of a UI value. */
export function trimUid(text: string): string {
  let end = text.length;
  while (end > 0 && (text.charCodeAt(end - 1) === 0 || text.charCodeAt(end - 1) === 0x20)) end--;
  let start = 0;
  while (start < end && text.charCodeAt(start) === 0x20) start++;
  return text.slice(start, end);
}
