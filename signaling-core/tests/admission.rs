//! Connection admission: tokens in query and cookie, Origin allowlist, combinators, config.
#![allow(missing_docs)]

use signaling_core::admission::{
    Admission, AdmissionConfig, AdmissionConfigError, AllOf, AllowAll, OriginAllowlist, Refusal,
    RefusalReason, TokenCheck, CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, FORBIDDEN, MAX_TOKEN_LEN,
    UNAUTHORIZED,
};
use signaling_core::transport::{CloseCode, PeerInfo};

fn peer(query: Option<&str>, headers: &[(&str, &str)]) -> PeerInfo {
    let mut p = PeerInfo::new("ws");
    p.path = "/ws".into();
    p.query = query.map(Into::into);
    p.headers = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    p
}

fn tokens(t: &[&str]) -> TokenCheck {
    TokenCheck::new(t).unwrap_or_else(|e| panic!("{e}"))
}

fn origins(o: &[&str]) -> OriginAllowlist {
    OriginAllowlist::new(o).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn peer_info_cookie_and_origin() {
    let p = peer(
        None,
        &[
            ("cookie", "a=1; token=abc ;b=2"),
            ("cookie", "c=3; token=second"),
            ("origin", "https://example.org"),
        ],
    );
    assert_eq!(p.cookie("a"), Some("1"));
    assert_eq!(p.cookie("token"), Some("abc"));
    assert_eq!(p.cookie("b"), Some("2"));
    assert_eq!(p.cookie("c"), Some("3"));
    assert_eq!(p.cookie("Token"), None);
    assert_eq!(p.cookie("missing"), None);
    assert_eq!(p.origin(), Some("https://example.org"));
    let p = peer(None, &[("cookie", "novalue; x=")]);
    assert_eq!(p.cookie("novalue"), None);
    assert_eq!(p.cookie("x"), Some(""));
    assert_eq!(peer(None, &[]).origin(), None);
}

#[test]
fn token_via_query() {
    let t = tokens(&["s3cret"]).query("token");
    assert_eq!(t.admit(&peer(Some("room=1&token=s3cret"), &[])), Ok(()));
    assert_eq!(
        t.admit(&peer(Some("token=wrong"), &[])),
        Err(Refusal::BAD_TOKEN)
    );
    assert_eq!(
        t.admit(&peer(Some("token=s3cre"), &[])),
        Err(Refusal::BAD_TOKEN)
    );
    assert_eq!(
        t.admit(&peer(Some("token=s3crett"), &[])),
        Err(Refusal::BAD_TOKEN)
    );
    assert_eq!(t.admit(&peer(Some("token="), &[])), Err(Refusal::BAD_TOKEN));
    assert_eq!(
        t.admit(&peer(Some("room=1"), &[])),
        Err(Refusal::MISSING_TOKEN)
    );
    assert_eq!(t.admit(&peer(None, &[])), Err(Refusal::MISSING_TOKEN));
    // The cookie is not a source unless configured.
    assert_eq!(
        t.admit(&peer(None, &[("cookie", "token=s3cret")])),
        Err(Refusal::MISSING_TOKEN)
    );
}

#[test]
fn token_percent_decoding() {
    let t = tokens(&["a+b/c=", "ü ß"]).query("t");
    // encodeURIComponent form and the raw form both match; `+` is not a space.
    assert_eq!(t.admit(&peer(Some("t=a%2Bb%2Fc%3D"), &[])), Ok(()));
    assert_eq!(t.admit(&peer(Some("t=a+b/c="), &[])), Ok(()));
    assert_eq!(t.admit(&peer(Some("t=%C3%BC%20%C3%9F"), &[])), Ok(()));
    assert_eq!(
        t.admit(&peer(Some("t=%C3%BC+%C3%9F"), &[])),
        Err(Refusal::BAD_TOKEN)
    );
    // Broken escapes stay literal and do not panic.
    assert_eq!(t.admit(&peer(Some("t=%zz%"), &[])), Err(Refusal::BAD_TOKEN));
    assert_eq!(t.admit(&peer(Some("t=%FF"), &[])), Err(Refusal::BAD_TOKEN));
}

#[test]
fn token_via_cookie_and_both() {
    let t = tokens(&["s3cret"]).cookie("sig");
    assert_eq!(
        t.admit(&peer(None, &[("cookie", "x=1; sig=s3cret")])),
        Ok(())
    );
    assert_eq!(
        t.admit(&peer(None, &[("cookie", "sig=nope")])),
        Err(Refusal::BAD_TOKEN)
    );
    assert_eq!(
        t.admit(&peer(Some("sig=s3cret"), &[])),
        Err(Refusal::MISSING_TOKEN)
    );

    let both = tokens(&["s3cret"]).query("token").cookie("token");
    assert_eq!(
        both.admit(&peer(Some("token=wrong"), &[("cookie", "token=s3cret")])),
        Ok(())
    );
    assert_eq!(
        both.admit(&peer(Some("token=s3cret"), &[("cookie", "token=wrong")])),
        Ok(())
    );
    assert_eq!(
        both.admit(&peer(Some("token=a"), &[("cookie", "token=b")])),
        Err(Refusal::BAD_TOKEN)
    );
}

#[test]
fn several_tokens_for_rotation() {
    let t = tokens(&["old", "new-token"]).query("token");
    assert_eq!(t.admit(&peer(Some("token=old"), &[])), Ok(()));
    assert_eq!(t.admit(&peer(Some("token=new-token"), &[])), Ok(()));
    assert_eq!(
        t.admit(&peer(Some("token=ol"), &[])),
        Err(Refusal::BAD_TOKEN)
    );
}

#[test]
fn token_check_construction() {
    assert_eq!(
        TokenCheck::new(Vec::<String>::new()).err(),
        Some(AdmissionConfigError::NoTokens)
    );
    assert_eq!(
        TokenCheck::new(["ok", ""]).err(),
        Some(AdmissionConfigError::EmptyToken)
    );
    assert_eq!(
        TokenCheck::new([vec![b'x'; MAX_TOKEN_LEN + 1]]).err(),
        Some(AdmissionConfigError::TokenTooLong)
    );
    // No source configured: fails closed.
    assert_eq!(
        tokens(&["s"]).admit(&peer(Some("token=s"), &[("cookie", "token=s")])),
        Err(Refusal::MISSING_TOKEN)
    );
    // A presented token over the limit is refused without comparing.
    let long = format!("token={}", "x".repeat(MAX_TOKEN_LEN + 1));
    assert_eq!(
        tokens(&["x"]).query("token").admit(&peer(Some(&long), &[])),
        Err(Refusal::BAD_TOKEN)
    );
    assert!(!format!("{:?}", tokens(&["hunter2"])).contains("hunter2"));
}

#[test]
fn origin_allowlist() {
    let o = origins(&["https://example.org/", "http://127.0.0.1:8080"]);
    let with = |origin: &str| peer(None, &[("origin", origin)]);
    assert_eq!(o.admit(&with("https://example.org")), Ok(()));
    assert_eq!(o.admit(&with("HTTPS://Example.ORG")), Ok(()));
    assert_eq!(o.admit(&with("http://127.0.0.1:8080")), Ok(()));
    for bad in [
        "http://example.org",
        "https://example.org:443",
        "https://example.org.evil.test",
        "https://evil.example.org",
        "http://127.0.0.1:8081",
        "null",
        "",
    ] {
        assert_eq!(o.admit(&with(bad)), Err(Refusal::FORBIDDEN_ORIGIN), "{bad}");
    }
    // Missing Origin: admitted by default (not a browser), refusable.
    assert_eq!(o.admit(&peer(None, &[])), Ok(()));
    let strict = o.allow_missing(false);
    assert_eq!(strict.admit(&peer(None, &[])), Err(Refusal::MISSING_ORIGIN));
    assert_eq!(strict.admit(&with("https://example.org")), Ok(()));

    for bad in [
        "example.org",
        "https://",
        "https://example.org/path",
        "https://example.org?x",
        "https://user@example.org",
        "://example.org",
        "*",
    ] {
        assert_eq!(
            OriginAllowlist::new([bad]).err(),
            Some(AdmissionConfigError::BadOrigin { origin: bad.into() }),
            "{bad}"
        );
    }
}

#[test]
fn combinators_check_in_order() {
    let both = (
        origins(&["https://example.org"]),
        tokens(&["s"]).query("token"),
    );
    let cross_site = peer(Some("token=nope"), &[("origin", "https://evil.test")]);
    // Origin first: a cross-site request gets 403 whatever its token.
    assert_eq!(both.admit(&cross_site), Err(Refusal::FORBIDDEN_ORIGIN));
    let reversed = (
        tokens(&["s"]).query("token"),
        origins(&["https://example.org"]),
    );
    assert_eq!(reversed.admit(&cross_site), Err(Refusal::BAD_TOKEN));

    let all = AllOf(vec![
        Box::new(AllowAll),
        Box::new(origins(&["https://example.org"])),
        Box::new(tokens(&["s"]).query("token")),
    ]);
    assert_eq!(all.admit(&cross_site), Err(Refusal::FORBIDDEN_ORIGIN));
    assert_eq!(
        all.admit(&peer(Some("token=s"), &[("origin", "https://example.org")])),
        Ok(())
    );
    assert_eq!(AllOf(vec![]).admit(&cross_site), Ok(()));
}

#[test]
fn closures_are_admissions() {
    let only_ws_path = |p: &PeerInfo| {
        if p.path == "/ws" {
            Ok(())
        } else {
            Err(Refusal::other(404, "unknown_path"))
        }
    };
    assert_eq!(only_ws_path.admit(&peer(None, &[])), Ok(()));
    let mut other = peer(None, &[]);
    other.path = "/x".into();
    let r = (AllowAll, only_ws_path).admit(&other);
    assert_eq!(r, Err(Refusal::other(404, "unknown_path")));
    let boxed: Box<dyn Admission> = Box::new(only_ws_path);
    assert!(boxed.admit(&other).is_err());
}

#[test]
fn refusal_wire_constants() {
    assert_eq!(UNAUTHORIZED, 401);
    assert_eq!(FORBIDDEN, 403);
    assert_eq!(Refusal::MISSING_TOKEN.status, 401);
    assert_eq!(Refusal::BAD_TOKEN.status, 401);
    assert_eq!(Refusal::FORBIDDEN_ORIGIN.status, 403);
    assert_eq!(Refusal::MISSING_ORIGIN.status, 403);
    assert_eq!(Refusal::BAD_TOKEN.close_code(), CLOSE_UNAUTHORIZED);
    assert_eq!(CLOSE_UNAUTHORIZED, CloseCode(4401));
    assert_eq!(Refusal::FORBIDDEN_ORIGIN.close_code(), CLOSE_FORBIDDEN);
    assert_eq!(CLOSE_FORBIDDEN, CloseCode(4403));
    assert_eq!(
        Refusal::other(70, "odd").close_code(),
        CloseCode::POLICY_VIOLATION
    );
    let c = Refusal::BAD_TOKEN.close_reason();
    assert_eq!((c.code, c.reason.as_str()), (CloseCode(4401), "bad_token"));
    assert_eq!(Refusal::MISSING_TOKEN.to_string(), "401: missing_token");
    assert_eq!(RefusalReason::ForbiddenOrigin.as_str(), "forbidden_origin");
    assert_eq!(RefusalReason::MissingOrigin.as_str(), "missing_origin");
}

fn config(json: &str) -> AdmissionConfig {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

#[test]
fn config_builds_origin_then_token() {
    let a = config(
        r#"{"tokens":["s3cret"],"token_query":"token","token_cookie":"token",
            "origins":["http://127.0.0.1:8080"]}"#,
    )
    .build()
    .unwrap_or_else(|e| panic!("{e}"));
    let local = ("origin", "http://127.0.0.1:8080");
    assert_eq!(a.admit(&peer(Some("token=s3cret"), &[local])), Ok(()));
    assert_eq!(
        a.admit(&peer(None, &[local, ("cookie", "token=s3cret")])),
        Ok(())
    );
    assert_eq!(a.admit(&peer(None, &[local])), Err(Refusal::MISSING_TOKEN));
    assert_eq!(
        a.admit(&peer(
            Some("token=s3cret"),
            &[("origin", "https://evil.test")]
        )),
        Err(Refusal::FORBIDDEN_ORIGIN)
    );
    // Missing Origin admitted by default; refused with allow_missing_origin = false.
    assert_eq!(a.admit(&peer(Some("token=s3cret"), &[])), Ok(()));
    let strict = config(r#"{"origins":["http://127.0.0.1:8080"],"allow_missing_origin":false}"#)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(strict.admit(&peer(None, &[])), Err(Refusal::MISSING_ORIGIN));

    let open = config("{}").build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(open.admit(&peer(None, &[])), Ok(()));

    let c = config(r#"{"tokens":["hunter2"],"token_query":"t"}"#);
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn config_errors() {
    let err = |json: &str| config(json).build().err();
    assert_eq!(
        err(r#"{"tokens":["x"]}"#),
        Some(AdmissionConfigError::NoTokenSource)
    );
    assert_eq!(
        err(r#"{"token_query":"token"}"#),
        Some(AdmissionConfigError::NoTokens)
    );
    assert_eq!(
        err(r#"{"tokens":[""],"token_query":"token"}"#),
        Some(AdmissionConfigError::EmptyToken)
    );
    assert_eq!(
        err(r#"{"origins":["example.org"]}"#),
        Some(AdmissionConfigError::BadOrigin {
            origin: "example.org".into()
        })
    );
    assert!(serde_json::from_str::<AdmissionConfig>(r#"{"token":["x"]}"#).is_err());
}

#[test]
fn query_values_are_decoded_as_browsers_encode_them() {
    let mut peer = PeerInfo::new("test");
    peer.query = Some("room=caf%C3%A9+au+lait&raw=a%2Bb&bad=%FF&empty=&flag".into());
    assert_eq!(peer.query_value("room").as_deref(), Some("café au lait"));
    assert_eq!(peer.query_param("room"), Some("caf%C3%A9+au+lait"));
    assert_eq!(peer.query_value("raw").as_deref(), Some("a+b"));
    assert_eq!(peer.query_value("bad"), None, "not UTF-8");
    assert_eq!(peer.query_value("empty").as_deref(), Some(""));
    assert_eq!(peer.query_value("flag").as_deref(), Some(""));
    assert_eq!(peer.query_value("missing"), None);
}
