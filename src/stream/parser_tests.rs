//! Tests of the SSE parser: Dify's framing, every line ending, and arbitrary splits (property tests).
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    event: Option<String>,
    data: String,
    truncated: bool,
}

fn parse_chunks(chunks: &[&[u8]], max: usize) -> Vec<Owned> {
    let mut p = SseParser::new(max);
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c, &mut |e| {
            out.push(Owned {
                event: e.event.map(String::from),
                data: String::from_utf8_lossy(e.data).into_owned(),
                truncated: e.truncated,
            })
        });
    }
    out
}

fn ev(event: Option<&str>, data: &str) -> Owned {
    Owned {
        event: event.map(String::from),
        data: data.into(),
        truncated: false,
    }
}

#[test]
fn reads_difys_frames() {
    let body = b"event: ping\n\ndata: {\"event\":\"message\",\"answer\":\"\xc2\xb0C\"}\n\ndata: {\"event\":\"message_end\"}\n\n";
    assert_eq!(
        parse_chunks(&[body], 1024),
        vec![
            ev(Some("ping"), ""),
            ev(None, "{\"event\":\"message\",\"answer\":\"°C\"}"),
            ev(None, "{\"event\":\"message_end\"}"),
        ]
    );
}

#[test]
fn every_line_ending_and_multiline_data() {
    let want = vec![ev(None, "a\nb"), ev(Some("x"), "c")];
    for body in [
        &b"data: a\ndata: b\n\nevent: x\ndata: c\n\n"[..],
        b"data: a\r\ndata: b\r\n\r\nevent: x\r\ndata: c\r\n\r\n",
        b"data: a\rdata: b\r\revent: x\rdata:c\r\r",
        b": comment\ndata: a\nid: 7\ndata: b\n\nevent: x\ndata: c\n\n",
    ] {
        assert_eq!(
            parse_chunks(&[body], 64),
            want,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn crlf_split_between_chunks_is_one_line_ending() {
    assert_eq!(
        parse_chunks(&[b"data: a\r", b"\n\r", b"\n"], 64),
        vec![ev(None, "a")]
    );
}

#[test]
fn split_inside_a_utf8_character() {
    let body = "data: 75–80 °C\n\n".as_bytes();
    for i in 0..body.len() {
        assert_eq!(
            parse_chunks(&[&body[..i], &body[i..]], 64),
            vec![ev(None, "75–80 °C")],
            "split at {i}"
        );
    }
}

#[test]
fn long_data_is_cut_at_the_cap_and_flagged() {
    let out = parse_chunks(&[b"data: 0123456789abcdef\n\ndata: ok\n\n"], 8);
    assert_eq!(
        out[0],
        Owned {
            event: None,
            data: "01234567".into(),
            truncated: true
        }
    );
    assert_eq!(out[1], ev(None, "ok"));
    // Split across chunks too, with bounded memory.
    let mut p = SseParser::new(8);
    let mut n = 0;
    p.feed(b"data: ", &mut |_| n += 1);
    for _ in 0..1000 {
        p.feed(b"xxxxxxxxxxxxxxxx", &mut |_| n += 1);
        assert!(p.buffered() < 128, "buffer grew to {}", p.buffered());
    }
    p.feed(b"\n\n", &mut |e| {
        assert!(e.truncated);
        n += 1;
    });
    assert_eq!(n, 1);
}

fn serialize(events: &[Owned], endings: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    let mut k = 0;
    let mut eol = || {
        k += 1;
        endings[k % endings.len()]
    };
    for e in events {
        if let Some(name) = &e.event {
            out.push_str(&format!("event: {name}{}", eol()));
        }
        for line in e.data.split('\n') {
            if !(e.data.is_empty() && e.event.is_some()) {
                out.push_str(&format!("data: {line}{}", eol()));
            }
        }
        out.push_str(eol());
    }
    out.into_bytes()
}

fn arb_event() -> impl Strategy<Value = Owned> {
    let name = prop::option::of("[a-z_]{1,12}");
    let data = prop::collection::vec("[^\r\n]{0,40}", 1..4).prop_map(|l| l.join("\n"));
    (name, data).prop_map(|(event, data)| {
        // An event-only frame carries no data at all (Dify's ping).
        let data = if event.is_some() && data.trim().is_empty() {
            String::new()
        } else {
            data
        };
        Owned {
            event,
            data,
            truncated: false,
        }
    })
}

proptest! {
    #[test]
    fn any_split_gives_the_same_events(
        events in prop::collection::vec(arb_event(), 1..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        // "\r" is never followed by a lone "\n" ending: the two would read as one CRLF.
        ending in prop::sample::select(vec![vec!["\n"], vec!["\r\n"], vec!["\r"], vec!["\r", "\r\n", "\n"]]),
    ) {
        let body = serialize(&events, &ending);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&body[last..p]);
            last = p;
        }
        chunks.push(&body[last..]);
        prop_assert_eq!(parse_chunks(&chunks, 1 << 16), events);
    }

    #[test]
    fn never_panics_and_stays_bounded(bytes in prop::collection::vec(any::<u8>(), 0..2048), cut in any::<prop::sample::Index>()) {
        let at = cut.index(bytes.len() + 1);
        let mut p = SseParser::new(256);
        p.feed(&bytes[..at], &mut |e| assert!(e.data.len() <= 256));
        p.feed(&bytes[at..], &mut |e| assert!(e.data.len() <= 256));
        prop_assert!(p.buffered() <= 256 + 64 + 16 + 256 + 64);
    }
}
