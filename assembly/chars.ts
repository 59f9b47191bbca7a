// Character classes, on one UTF-16 code unit or one byte (as i32; -1 = "no character", matching
// nothing). Every parser and validator of the filter takes its predicates from here.

export function isAsciiDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

export function isAsciiLetter(c: i32): bool {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
}

export function isAsciiUpper(c: i32): bool {
  return c >= 0x41 && c <= 0x5a;
}

export function isAsciiAlphanumeric(c: i32): bool {
  return isAsciiLetter(c) || isAsciiDigit(c);
}

// The value of a hexadecimal digit (either case), or -1.
export function hexDigitValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

// Visible ASCII, 0x21-0x7E: printable without spaces.
export function isVisibleAscii(c: i32): bool {
  return c >= 0x21 && c <= 0x7e;
}

// RFC 9110 §5.6.2 token characters (header names).
export function isTokenChar(c: i32): bool {
  if (isAsciiAlphanumeric(c)) return true;
  return (
    c == 0x21 || // !
    c == 0x23 || // #
    c == 0x24 || // $
    c == 0x25 || // %
    c == 0x26 || // &
    c == 0x27 || // '
    c == 0x2a || // *
    c == 0x2b || // +
    c == 0x2d || // -
    c == 0x2e || // .
    c == 0x5e || // ^
    c == 0x5f || // _
    c == 0x60 || // `
    c == 0x7c || // |
    c == 0x7e // ~
  );
}

// What a header value may not carry (RFC 9110 §5.5 field-value: HTAB, SP, VCHAR, obs-text): control
// characters other than HTAB, and DEL.
export function isHeaderValueControl(c: i32): bool {
  return (c >= 0 && c < 0x20 && c != 0x09) || c == 0x7f;
}

// RFC 3986 unreserved characters (kept as they are in a percent-encoded query component).
export function isUrlUnreserved(c: i32): bool {
  return isAsciiAlphanumeric(c) || c == 0x2d || c == 0x2e || c == 0x5f || c == 0x7e;
}

// RFC 8259 insignificant whitespace.
export function isJsonWhitespace(c: i32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

// The characters after a backslash in a two-character JSON escape: " \ / b f n r t.
export function isJsonSimpleEscape(c: i32): bool {
  return c == 0x22 || c == 0x5c || c == 0x2f || c == 0x62 || c == 0x66 || c == 0x6e || c == 0x72 || c == 0x74;
}

// A configuration name made of letters, digits, "_" and "-" (and "." when `dot`).
export function isNameChar(c: i32, dot: bool): bool {
  return isAsciiAlphanumeric(c) || c == 0x5f || c == 0x2d || (dot && c == 0x2e);
}

export function isHighSurrogate(c: i32): bool {
  return c >= 0xd800 && c <= 0xdbff;
}

export function isLowSurrogate(c: i32): bool {
  return c >= 0xdc00 && c <= 0xdfff;
}
