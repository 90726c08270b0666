//! Test helpers: a small fake WebRTC stack's SDP and candidates.
#![allow(dead_code, unreachable_pub)]

/// A well-formed BUNDLE SDP with `sections` m-sections (mids "0", "1", ...).
pub fn sdp(ufrag: &str, version: u64, sections: usize, role: &str) -> String {
    let mut s = String::new();
    s.push_str("v=0\r\n");
    s.push_str(&format!(
        "o=- 4611731400430051336 {version} IN IP4 127.0.0.1\r\n"
    ));
    s.push_str("s=-\r\nt=0 0\r\n");
    let mids: Vec<String> = (0..sections).map(|i| i.to_string()).collect();
    s.push_str(&format!("a=group:BUNDLE {}\r\n", mids.join(" ")));
    s.push_str("a=msid-semantic: WMS\r\n");
    for (i, mid) in mids.iter().enumerate() {
        let kind = if i % 2 == 0 { "video" } else { "audio" };
        s.push_str(&format!("m={kind} 9 UDP/TLS/RTP/SAVPF 96\r\n"));
        s.push_str("c=IN IP4 0.0.0.0\r\n");
        s.push_str(&format!("a=ice-ufrag:{ufrag}\r\n"));
        s.push_str(&format!("a=ice-pwd:{}\r\n", pwd(ufrag)));
        s.push_str("a=ice-options:trickle\r\n");
        s.push_str("a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n");
        s.push_str(&format!("a=setup:{role}\r\n"));
        s.push_str(&format!("a=mid:{mid}\r\n"));
        s.push_str("a=sendrecv\r\na=rtcp-mux\r\n");
        s.push_str("a=rtpmap:96 VP8/90000\r\n");
    }
    s
}

/// An ICE password derived from the ufrag (22+ ice-chars).
pub fn pwd(ufrag: &str) -> String {
    format!("{ufrag}pwdpwdpwdpwdpwdpwdpwdpw")
}

/// A Chrome-style host candidate; `ufrag` adds the `ufrag` extension.
pub fn candidate(n: u32, ufrag: Option<&str>) -> String {
    let mut c = format!(
        "candidate:{} 1 udp {} 192.0.2.{} {} typ host generation 0",
        1000 + n,
        2_122_260_223u32 - n,
        (n % 250) + 1,
        50_000 + n
    );
    if let Some(u) = ufrag {
        c.push_str(" ufrag ");
        c.push_str(u);
    }
    c.push_str(" network-id 1");
    c
}

/// Drains a negotiation: the frames it transmits, its events, and its next timeout.
pub fn drain(
    n: &mut signaling_core::negotiation::Negotiation,
) -> (
    Vec<String>,
    Vec<signaling_core::negotiation::Event>,
    Option<std::time::Instant>,
) {
    use signaling_core::negotiation::Output;
    let mut frames = Vec::new();
    let mut events = Vec::new();
    loop {
        match n.poll_output() {
            Output::Transmit(f) => frames.push(f),
            Output::Event(e) => events.push(e),
            Output::Timeout(t) => return (frames, events, t),
        }
    }
}
