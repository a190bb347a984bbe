// Byte helpers shared by the floor SCP and SCU (bench/floor): PDUs, items and command elements.
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';

export const u16be = (v) => Buffer.from([v >> 8, v & 0xff]);
export const u16le = (v) => Buffer.from([v & 0xff, v >> 8]);
export const u32be = (v) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
export const u32le = (v) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
/** A UID or text value padded to even length with NUL. */
export const even = (s) => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
/** A value's text without its padding. */
export const text = (b) => b.toString('latin1').replace(/[\0 ]+$/, '');
/** A PDU item or sub-item: type, reserved byte, 16-bit length. */
export const item = (type, body) => Buffer.concat([Buffer.from([type, 0]), u16be(body.length), body]);
/** A PDU: type, reserved byte, 32-bit length. */
export const pdu = (type, body) => Buffer.concat([Buffer.from([type, 0]), u32be(body.length), body]);
/** A command set element (Implicit VR Little Endian). */
export const element = (group, elem, value) =>
  Buffer.concat([u16le(group), u16le(elem), u32le(value.length), value]);
/** The header of a P-DATA-TF PDU of one PDV of `length` bytes (control: 0x01 command, 0x02 last). */
export const pDataHead = (contextId, control, length) =>
  Buffer.concat([
    Buffer.from([4, 0]),
    u32be(length + 6),
    u32be(length + 2),
    Buffer.from([contextId, control]),
  ]);
/** A P-DATA-TF PDU of one PDV: `control` 0x03 for a whole command. */
export const pData = (contextId, control, value) =>
  Buffer.concat([pDataHead(contextId, control, value.length), value]);
/** The User Information item: maximum length 116794 (Tessera's default), an implementation class UID. */
export const userInformation = () =>
  item(0x50, Buffer.concat([item(0x51, u32be(116_794)), item(0x52, Buffer.from('1.2.826.0.1.3680043.9.7'))]));
/** The application context item (DICOM's). */
export const applicationContext = () => item(0x10, Buffer.from('1.2.840.10008.3.1.1.1'));
