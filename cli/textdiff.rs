//! Line diffs of text files and XML exports for `diff --content`.

use std::borrow::Cow;

/// XML whose longest line is longer than this is taken to be written on one line and is
/// pretty-printed before it is compared.
const ONE_LINE: usize = 300;

/// The text of `bytes`: UTF-8 or UTF-16 with a byte-order mark, or UTF-8 without one. `None`
/// for anything else (binary content).
pub fn decode(bytes: &[u8]) -> Option<Cow<'_, str>> {
    let utf16 = |body: &[u8], unit: fn([u8; 2]) -> u16| {
        if !body.len().is_multiple_of(2) {
            return None;
        }
        let units: Vec<u16> = body.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
        String::from_utf16(&units).ok().map(Cow::Owned)
    };
    let text = match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => std::str::from_utf8(rest).ok().map(Cow::Borrowed),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
    }?;
    // NUL bytes mean binary content that happens to be valid UTF-8.
    (!text.contains('\0')).then_some(text)
}

fn is_xml(text: &str) -> bool {
    text.trim_start().starts_with('<')
}

fn on_one_line(text: &str) -> bool {
    text.lines().any(|l| l.len() > ONE_LINE)
}

/// `text` indented two spaces per element level, one tag per line; `None` when it is not
/// well-formed XML.
pub fn pretty_xml(text: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut writer = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    loop {
        match reader.read_event().ok()? {
            Event::Eof => break,
            event => writer.write_event(event).ok()?,
        }
    }
    let mut out = String::from_utf8(writer.into_inner()).ok()?;
    out.push('\n');
    Some(out)
}

/// Two versions of a text prepared for a line diff: both XML documents are pretty-printed when
/// either is written on one line, so that a changed element shows as a changed line.
pub fn prepare<'a>(before: &'a str, after: &'a str) -> (Cow<'a, str>, Cow<'a, str>) {
    let xml = (before.is_empty() || is_xml(before)) && (after.is_empty() || is_xml(after));
    if xml && (on_one_line(before) || on_one_line(after)) {
        if let (Some(a), Some(b)) = (pretty(before), pretty(after)) {
            return (a, b);
        }
    }
    (Cow::Borrowed(before), Cow::Borrowed(after))
}

fn pretty(text: &str) -> Option<Cow<'_, str>> {
    if text.is_empty() {
        return Some(Cow::Borrowed(text));
    }
    pretty_xml(text).map(Cow::Owned)
}

/// A unified diff (3 lines of context) of two texts labelled `a` and `b`; empty when they are
/// the same.
pub fn unified(before: &str, after: &str, a: &str, b: &str) -> String {
    let (before, after) = prepare(before, after);
    if before == after {
        return String::new();
    }
    similar::TextDiff::from_lines(before.as_ref(), after.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(a, b)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_LINE_XML: &str = concat!(
        r#"<?xml version="1.0" encoding="utf-8"?><DocItemSet xmlns="urn:schema:Microsoft.Rtc.Management.ScopeFramework.2008">"#,
        r#"<DocItem Name="urn:xds:{A}"><Data><Policy Name="Global" AllowIPAudio="true" MaxMeetingSize="250"/></Data></DocItem>"#,
        r#"<DocItem Name="urn:xds:{B}"><Data><Setting Name="Global" EnableFileTransfer="false"/></Data></DocItem>"#,
        r#"<DocItem Name="urn:xds:{C}"><Data><Setting Name="Site:Dublin" Value="x &amp; y"/></Data></DocItem>"#,
        "</DocItemSet>"
    );

    #[test]
    fn a_changed_element_of_one_line_xml_is_one_changed_line() {
        let after = ONE_LINE_XML.replace("MaxMeetingSize=\"250\"", "MaxMeetingSize=\"1000\"");
        let diff = unified(ONE_LINE_XML, &after, "a/DocItemSet.xml", "b/DocItemSet.xml");
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| {
                (l.starts_with('-') || l.starts_with('+'))
                    && !l.starts_with("--- ")
                    && !l.starts_with("+++ ")
            })
            .collect();
        assert_eq!(
            changed,
            [
                r#"-      <Policy Name="Global" AllowIPAudio="true" MaxMeetingSize="250"/>"#,
                r#"+      <Policy Name="Global" AllowIPAudio="true" MaxMeetingSize="1000"/>"#,
            ],
            "{diff}"
        );
        assert!(diff.starts_with("--- a/DocItemSet.xml\n+++ b/DocItemSet.xml\n"));
        // Entities stay escaped.
        assert!(pretty_xml(ONE_LINE_XML).unwrap().contains("x &amp; y"));
    }

    #[test]
    fn identical_texts_give_no_diff_and_plain_text_is_not_reformatted() {
        assert_eq!(unified(ONE_LINE_XML, ONE_LINE_XML, "a", "b"), "");
        let diff = unified("one\ntwo\nthree\n", "one\n2\nthree\n", "a", "b");
        assert!(diff.contains("-two\n+2\n"), "{diff}");
    }

    #[test]
    fn malformed_xml_is_compared_as_it_is() {
        let broken = format!("{}<unclosed>", &ONE_LINE_XML[..ONE_LINE_XML.len() - 14]);
        let (a, _) = prepare(&broken, ONE_LINE_XML);
        assert_eq!(a, broken);
    }

    #[test]
    fn decodes_utf16_exports_and_refuses_binary() {
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "<a>é</a>".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(&utf16).unwrap(), "<a>é</a>");
        assert_eq!(decode(b"\xEF\xBB\xBF<a/>").unwrap(), "<a/>");
        assert!(decode(b"PK\x03\x04\0\0").is_none());
        assert!(decode(&[0xC3, 0x28]).is_none());
    }
}
