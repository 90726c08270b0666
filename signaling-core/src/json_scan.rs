//! A fast reader for the common shape of an envelope, for the forwarding path.
//!
//! [`envelope`] reads `{"type":..,"value":..,"to":..,"from":..}` (any order, any whitespace,
//! other keys skipped) in one pass over the bytes, checking the JSON grammar as it goes. It only
//! ever answers for frames it is sure of: anything unusual (an escape in a key, `type`, `to` or
//! `from`; a repeated key; deep nesting; any doubt about validity) returns `None`, and the caller
//! falls back to serde_json, which then decides. So it accepts exactly what serde_json accepts,
//! and returns the same fields, on every frame it answers for; the `json_scan_agrees` property
//! test and the wire fuzz target check this against serde_json.

/// The fields of an envelope, as spans of the frame's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    /// `type`, without its quotes (it holds no escape).
    pub kind: &'a str,
    /// `value` as raw JSON text (surrounding whitespace excluded); `None` if absent or `null`.
    pub value: Option<&'a str>,
    /// `to`, without quotes; `None` if absent or `null`.
    pub to: Option<&'a str>,
    /// `from`, without quotes; `None` if absent or `null`.
    pub from: Option<&'a str>,
}

/// Nesting deeper than this inside a value is left to serde_json.
const MAX_DEPTH: usize = 32;

/// Reads the envelope of `frame`; `None`: not sure, ask serde_json.
pub(crate) fn envelope(frame: &str) -> Option<Envelope<'_>> {
    canonical(frame).or_else(|| general(frame))
}

/// The envelope as browsers write it (`JSON.stringify({type, value})`): exactly
/// `{"type":"<plain>","value":"<string>"}`, no whitespace, no other key. Read with fixed
/// prefixes and one string scan; anything else is left to [`general`].
fn canonical(frame: &str) -> Option<Envelope<'_>> {
    let b = frame.as_bytes();
    let mut s = Scanner { b, i: 0 };
    s.literal(br#"{"type":"#)?;
    let kind = s.plain_str(frame)?;
    s.literal(br#","value":"#)?;
    let value_start = s.i;
    if s.peek()? != b'"' {
        return None;
    }
    s.string()?;
    let value = frame.get(value_start..s.i)?;
    s.literal(b"}")?;
    (s.i == b.len()).then_some(Envelope {
        kind,
        value: Some(value),
        to: None,
        from: None,
    })
}

/// Any envelope within the limits the module documents.
fn general(frame: &str) -> Option<Envelope<'_>> {
    let mut s = Scanner {
        b: frame.as_bytes(),
        i: 0,
    };
    s.ws();
    s.eat(b'{')?;
    let (mut kind, mut value, mut to, mut from) = (None, None, None, None);
    let mut seen = [false; 4];
    s.ws();
    if s.peek()? != b'}' {
        loop {
            s.ws();
            let key = s.plain_string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            let slot = match key {
                b"type" => 0,
                b"value" => 1,
                b"to" => 2,
                b"from" => 3,
                _ => {
                    // Unknown keys are ignored, but their values must still be JSON (and a
                    // repeated unknown key is fine).
                    s.value(0)?;
                    s.ws();
                    if s.next_is(b',') {
                        continue;
                    }
                    break;
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                // serde_json reports a duplicate field.
                return None;
            }
            match slot {
                0 => kind = Some(s.plain_str(frame)?),
                1 => {
                    let start = s.i;
                    s.value(0)?;
                    let raw = &frame[start..s.i];
                    value = (raw != "null").then_some(raw);
                }
                2 => to = s.optional_str(frame)?,
                _ => from = s.optional_str(frame)?,
            }
            s.ws();
            if !s.next_is(b',') {
                break;
            }
        }
    }
    s.ws();
    s.eat(b'}')?;
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    Some(Envelope {
        kind: kind?,
        value,
        to,
        from,
    })
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    fn next_is(&mut self, byte: u8) -> bool {
        self.eat(byte).is_some()
    }

    /// A string without escapes; its content's byte range.
    fn plain(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let end = self.i;
        self.i += 1;
        Some((start, end))
    }

    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let (start, end) = self.plain()?;
        Some(&self.b[start..end])
    }

    /// A string without escapes, as text. The span ends at ASCII quotes, so it is on char
    /// boundaries of `text`, which is the scanned text.
    fn plain_str<'t>(&mut self, text: &'t str) -> Option<&'t str> {
        let (start, end) = self.plain()?;
        text.get(start..end)
    }

    fn optional_str<'t>(&mut self, text: &'t str) -> Option<Option<&'t str>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        self.plain_str(text).map(Some)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// Skips a string, escapes included, checking them.
    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            // Runs of ordinary bytes are skipped a block, then eight bytes, at a time.
            self.i = crate::wire::find_escape(self.b, skip_plain_blocks(self.b, self.i));
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                // SDP's line ends, two escapes at once.
                b'\\' if self.b.get(self.i..self.i + 4) == Some(b"\\r\\n") => self.i += 4,
                b'\\' => {
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            self.i += 1;
                            // serde_json checks only that four hex digits follow when it skips
                            // a string (a lone surrogate is its reader's business).
                            let end = self.i.checked_add(4)?;
                            let hex = self.b.get(self.i..end)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i = end;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        self.next_is(b'-');
        match self.peek()? {
            b'0' => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.next_is(b'.') && self.digits() == 0 {
            return None;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Skips one JSON value (leading whitespace already skipped).
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'-' | b'0'..=b'9' => self.number(),
            b'[' if depth < MAX_DEPTH => {
                self.i += 1;
                self.ws();
                if self.next_is(b']') {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    if !self.next_is(b',') {
                        return self.eat(b']');
                    }
                }
            }
            b'{' if depth < MAX_DEPTH => {
                self.i += 1;
                self.ws();
                if self.next_is(b'}') {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    if !self.next_is(b',') {
                        return self.eat(b'}');
                    }
                }
            }
            _ => None,
        }
    }
}

/// Checks the fast reader against serde_json on `frame` (tests and fuzzing): where it answers,
/// serde_json must accept the frame and read the same fields; where the canonical reader
/// answers, the general one must answer the same.
#[cfg(any(fuzzing, test))]
pub(crate) fn check_against_serde(frame: &str) -> bool {
    if let Some(canonical) = canonical(frame) {
        assert_eq!(Some(canonical), general(frame), "both readers: {frame:?}");
    }
    let Some(fast) = envelope(frame) else {
        return false;
    };
    let slow: crate::wire::RawEnvelope<'_> = match serde_json::from_str(frame) {
        Ok(slow) => slow,
        Err(e) => panic!("the fast reader accepts what serde_json refuses ({e}): {frame:?}"),
    };
    assert_eq!(fast.kind, slow.kind, "{frame:?}");
    assert_eq!(fast.value, slow.value.map(|v| v.get()), "{frame:?}");
    assert_eq!(fast.to, slow.to.as_deref(), "{frame:?}");
    assert_eq!(fast.from, slow.from.as_deref(), "{frame:?}");
    true
}

/// The start of the first 16-byte block at or after `from` that holds a byte a JSON string
/// cannot hold as is (`"`, `\`, below 0x20), or of the last, partial block. A block's check has
/// no early exit, so the compiler does it with vector instructions: several times faster than
/// eight bytes at a time on long runs of plain text (a relayed payload), and faster on SDP too
/// (30 to 80 bytes between its `\r\n`s; larger blocks were measured slower there).
///
/// A run that is still plain after four blocks (a relayed payload, seldom SDP) is then checked
/// 64 bytes a step, and its end found again 16 bytes a step.
///
/// The envelope reader skips strings with it, and the codec's escaping and unescaping of string
/// values use it to find the next byte to escape (12-14 % faster on a Chrome offer than eight
/// bytes at a time alone).
#[inline]
pub(crate) fn skip_plain_blocks(bytes: &[u8], from: usize) -> usize {
    const N: usize = 16;
    const LONG: usize = 64;
    let mut i = from;
    for _ in 0..4 {
        match block::<N>(bytes, i) {
            Some(b) if !any_special(b) => i += N,
            _ => return i,
        }
    }
    while let Some(b) = block::<LONG>(bytes, i) {
        if any_special(b) {
            break;
        }
        i += LONG;
    }
    while let Some(b) = block::<N>(bytes, i) {
        if any_special(b) {
            break;
        }
        i += N;
    }
    i
}

/// The `N` bytes at `at`, if there are that many.
#[inline(always)]
fn block<const N: usize>(bytes: &[u8], at: usize) -> Option<&[u8; N]> {
    bytes
        .get(at..at.checked_add(N)?)
        .and_then(|c| <&[u8; N]>::try_from(c).ok())
}

/// Whether `block` holds a byte a JSON string cannot hold as is; no early exit (vectorised).
#[inline(always)]
fn any_special<const N: usize>(block: &[u8; N]) -> bool {
    block.iter().fold(false, |any, &b| {
        any | (b == b'"') | (b == b'\\') | (b < 0x20)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every special byte at every offset of a run of plain text stops the block scan in the
    /// block that holds it (or the string scan after it), and the envelope reader then sees it.
    #[test]
    fn block_scan_stops_at_every_special_byte() {
        // Up to runs long enough for the 64-byte steps and the 16-byte steps after them.
        for len in 0..200 {
            for from in 0..3.min(len + 1) {
                let plain = vec![b'x'; len];
                let end = skip_plain_blocks(&plain, from);
                assert!(end <= len && len - end < 16 && (end - from).is_multiple_of(16));
                for at in from..len {
                    for special in [b'"', b'\\', 0x00, 0x0a, 0x1f] {
                        let mut bytes = plain.clone();
                        bytes[at] = special;
                        let end = skip_plain_blocks(&bytes, from);
                        assert!(
                            end <= at && (end - from).is_multiple_of(16),
                            "{len} {from} {at}"
                        );
                        assert!(at < end + 16, "{len} {from} {at}: passed the byte");
                    }
                }
            }
            for special in [r"\u0001", r"\u0007\u0002"] {
                let value = format!("{}{special}", "x".repeat(len));
                let frame = format!(r#"{{"type":"t","value":"{value}"}}"#);
                assert_eq!(
                    envelope(&frame).and_then(|e| e.value),
                    Some(&*format!("\"{value}\""))
                );
                let raw = frame.replace(special, "\u{1}");
                assert_eq!(envelope(&raw), None, "a raw control byte at {len}");
            }
        }
    }

    /// Pieces of envelopes, good and bad, glued at random.
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        " ",
        "\n",
        "\t",
        "\"type\"",
        "\"value\"",
        "\"to\"",
        "\"from\"",
        "\"other\"",
        "\"webrtc/offer\"",
        "\"p1\"",
        "\"v=0\\r\\n\"",
        "\"\\u00e9\\ud800\"",
        "\"\\q\"",
        "\"\t\"",
        "\"x",
        "null",
        "nul",
        "true",
        "false",
        "0",
        "-0",
        "01",
        "1.5e-3",
        "1.",
        "-",
        "2E+",
        "\"é\"",
        "\"ty\\u0070e\"",
    ];

    fn pieces() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|p| p.concat())
    }

    /// Envelopes of the usual shape, with any strings and values.
    fn shaped() -> impl Strategy<Value = String> {
        let text = any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default());
        let value = prop_oneof![
            text.clone(),
            Just("null".to_owned()),
            any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap_or_default()),
            pieces(),
        ];
        (
            text,
            value,
            proptest::option::of("[a-z0-9]{1,4}"),
            any::<bool>(),
        )
            .prop_map(|(kind, value, to, spaced)| {
                let sep = if spaced { " " } else { "" };
                let to = to
                    .map(|t| format!(",{sep}\"to\":{sep}\"{t}\""))
                    .unwrap_or_default();
                format!("{{\"type\":{sep}{kind},\"value\":{sep}{value}{to}{sep}}}")
            })
    }

    proptest! {
        #[test]
        fn json_scan_agrees(frame in prop_oneof![pieces(), shaped()]) {
            check_against_serde(&frame);
        }

        #[test]
        fn json_scan_answers_for_plain_frames(kind in "[a-z/]{1,12}", value in any::<String>()) {
            let value = serde_json::to_string(&value).unwrap_or_default();
            let frame = format!("{{\"type\":\"{kind}\",\"value\":{value}}}");
            prop_assert!(check_against_serde(&frame), "{}", frame);
        }
    }

    #[test]
    fn reads_common_shapes() {
        let e = envelope(r#"{"type":"webrtc/offer","value":"v=0\r\n"}"#).expect("read");
        assert_eq!(e.kind, "webrtc/offer");
        assert_eq!(e.value, Some(r#""v=0\r\n""#));
        let e = envelope(
            r#" { "value" : {"a":[1,-2.5e3,true,null]} , "type":"x","to":"p1","from":null } "#,
        )
        .expect("read");
        assert_eq!(e.kind, "x");
        assert_eq!(e.value, Some(r#"{"a":[1,-2.5e3,true,null]}"#));
        assert_eq!((e.to, e.from), (Some("p1"), None));
        let e = envelope(r#"{"type":"t","value":null,"extra":[{}]}"#).expect("read");
        assert_eq!(e.value, None);
    }

    #[test]
    fn leaves_doubtful_frames_to_serde() {
        for frame in [
            r#"{"type":"a","type":"b"}"#,
            r#"{"type":"a\u0062"}"#,
            r#"{"type":"a","value":01}"#,
            r#"{"type":"a","value":"\x"}"#,
            r#"{"type":"a","value":1.}"#,
            r#"{"type":"a","value":[1,]}"#,
            r#"{"type":"a"} x"#,
            r#"{"type":"a",}"#,
            r#"{"value":1}"#,
            "{\"type\":\"a\",\"value\":\"tab\there\"}",
            r#"{"type":"a","to":5}"#,
        ] {
            assert_eq!(envelope(frame), None, "{frame}");
        }
    }
}
