//! Search-term splitting exactly as DRF's `SearchFilter` does it
//! (`search_smart_split` over Django's `smart_split`): terms are separated
//! by whitespace and commas, and a quoted phrase stays whole.

/// Django's `smart_split`: whitespace-separated tokens, where a token may
/// contain complete quoted strings (with backslash escapes).
fn smart_split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let is_quote = |c: char| c == '"' || c == '\'';
    let plain = |c: char| !c.is_whitespace() && !is_quote(c);
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < n {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        // First alternative: plain* (quoted plain*)+
        let mut j = i;
        while j < n && plain(chars[j]) {
            j += 1;
        }
        let mut end_of_quoted = None;
        loop {
            if j < n && is_quote(chars[j]) {
                let quote = chars[j];
                let mut k = j + 1;
                let mut closed = None;
                while k < n {
                    let c = chars[k];
                    if c == '\\' {
                        // `\\.` : any character but a newline after the backslash.
                        if k + 1 < n && chars[k + 1] != '\n' {
                            k += 2;
                            continue;
                        }
                        break;
                    }
                    if c == quote {
                        closed = Some(k);
                        break;
                    }
                    k += 1;
                }
                match closed {
                    Some(close) => {
                        j = close + 1;
                        while j < n && plain(chars[j]) {
                            j += 1;
                        }
                        end_of_quoted = Some(j);
                    }
                    None => break,
                }
            } else {
                break;
            }
        }
        let end = match end_of_quoted {
            Some(end) => end,
            // Second alternative: \S+
            None => {
                let mut k = start;
                while k < n && !chars[k].is_whitespace() {
                    k += 1;
                }
                k
            }
        };
        tokens.push(chars[start..end].iter().collect());
        i = end;
    }
    tokens
}

/// Django's `unescape_string_literal` (the caller checked the quotes).
fn unescape_string_literal(s: &str) -> String {
    let quote = s.chars().next().unwrap_or('"');
    let inner: String = if s.chars().count() >= 2 {
        let mut it = s.chars();
        it.next();
        it.next_back();
        it.collect()
    } else {
        String::new()
    };
    inner
        .replace(&format!("\\{quote}"), &quote.to_string())
        .replace("\\\\", "\\")
}

/// DRF 3.15+ `search_smart_split`, after removing NUL characters.
pub fn split_terms(search: &str) -> Vec<String> {
    let search = search.replace('\0', "");
    let mut terms = Vec::new();
    for token in smart_split(&search) {
        let term = token.trim_matches(',');
        let first = term.chars().next();
        let last = term.chars().last();
        if matches!(first, Some('"') | Some('\'')) && first == last {
            terms.push(unescape_string_literal(term));
        } else {
            for sub in term.split(',') {
                if !sub.is_empty() {
                    terms.push(sub.trim().to_owned());
                }
            }
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::split_terms;

    fn split(s: &str) -> Vec<String> {
        split_terms(s)
    }

    #[test]
    fn terms_split_on_whitespace_and_commas() {
        assert_eq!(split("anna smith"), ["anna", "smith"]);
        assert_eq!(split("anna,smith"), ["anna", "smith"]);
        assert_eq!(split(" anna ,, smith, "), ["anna", "smith"]);
        assert_eq!(split(""), Vec::<String>::new());
    }

    #[test]
    fn quoted_phrases_stay_whole() {
        assert_eq!(split("\"anna smith\" berlin"), ["anna smith", "berlin"]);
        assert_eq!(split("'o\\'brien' x"), ["o'brien", "x"]);
        assert_eq!(split("\"a,b\""), ["a,b"]);
        // A quote that never closes is an ordinary character.
        assert_eq!(split("o'brien"), ["o'brien"]);
        assert_eq!(split("\"anna smith"), ["\"anna", "smith"]);
        // Quotes inside a token keep the token together; not unquoted.
        assert_eq!(split("name=\"a b\""), ["name=\"a b\""]);
    }

    #[test]
    fn nul_characters_are_removed() {
        assert_eq!(split("an\0na"), ["anna"]);
    }
}
