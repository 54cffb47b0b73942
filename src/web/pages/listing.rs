//! Links and controls shared by the result pages: query strings that keep
//! the current filters, sortable column headers, page navigation, the
//! page-size choice and the options of filter selects.
//!
//! Only the parameters a page knows are carried over, always in the same
//! order, so links are stable and unknown parameters fall away.

use crate::query::{OrderBy, Params, ResolvedPage};
use crate::web::error::{PageError, encode_query_value};

/// Page sizes offered (the API accepts any from 1 to 100).
pub const PAGE_SIZES: [i64; 4] = [10, 25, 50, 100];

/// A 400 page for a query string that could not be decoded.
pub fn bad_query(reason: String) -> PageError {
    PageError::BadRequest(format!("The address could not be read: {reason}."))
}

/// The known, non-empty parameters of a result page.
#[derive(Debug, Clone)]
pub struct QueryLinks {
    path: &'static str,
    pairs: Vec<(&'static str, String)>,
}

impl QueryLinks {
    pub fn new(path: &'static str, params: &Params, keys: &[&'static str]) -> Self {
        let pairs = keys
            .iter()
            .filter_map(|k| params.get_non_empty(k).map(|v| (*k, v.to_owned())))
            .collect();
        Self { path, pairs }
    }

    /// The current value of `key` (empty when absent).
    pub fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// This page's address with some parameters replaced (`Some`) or
    /// removed (`None`).
    pub fn href(&self, changes: &[(&str, Option<&str>)]) -> String {
        self.href_to(self.path, changes)
    }

    /// Another page's address with the same parameters, changed as asked.
    pub fn href_to(&self, path: &str, changes: &[(&str, Option<&str>)]) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .pairs
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        for (k, v) in changes {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        if pairs.is_empty() {
            return path.to_owned();
        }
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
            .collect::<Vec<_>>()
            .join("&");
        format!("{path}?{query}")
    }

    /// Hidden inputs that carry every parameter except `except` (for the
    /// page-size form).
    pub fn hidden_except(&self, except: &[&str]) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(k, _)| !except.contains(k))
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }
}

/// A sortable column header.
#[derive(Debug, Clone)]
pub struct SortLink {
    pub label: &'static str,
    pub href: String,
    /// `""`, `"ascending"` or `"descending"` (for `aria-sort` and the arrow).
    pub state: &'static str,
}

impl SortLink {
    pub fn arrow(&self) -> &'static str {
        match self.state {
            "ascending" => " ▲",
            "descending" => " ▼",
            _ => "",
        }
    }
}

/// Header link for `name`: ascending first, descending when the column is
/// already the ascending primary sort. Goes back to page 1.
pub fn sort_link<F: Copy + PartialEq>(
    links: &QueryLinks,
    ordering: &[OrderBy<F>],
    field: F,
    name: &str,
    label: &'static str,
) -> SortLink {
    let primary = ordering.first().filter(|o| o.field == field);
    let state = match primary {
        Some(o) if o.descending => "descending",
        Some(_) => "ascending",
        None => "",
    };
    let next = if state == "ascending" {
        format!("-{name}")
    } else {
        name.to_owned()
    };
    SortLink {
        label,
        href: links.href(&[("ordering", Some(&next)), ("page", None)]),
        state,
    }
}

/// Page navigation for a resolved page.
#[derive(Debug, Clone)]
pub struct Pager {
    pub number: i64,
    pub num_pages: i64,
    pub count: i64,
    pub first_row: i64,
    pub last_row: i64,
    pub first: Option<String>,
    pub previous: Option<String>,
    pub next: Option<String>,
    pub last: Option<String>,
    pub page_size: i64,
    pub page_sizes: Vec<Choice>,
    pub hidden: Vec<(String, String)>,
}

impl Pager {
    pub fn new(links: &QueryLinks, page: &ResolvedPage, shown: usize) -> Self {
        let to = |n: i64| links.href(&[("page", (n > 1).then(|| n.to_string()).as_deref())]);
        let before = page.has_previous();
        let after = page.has_next();
        let mut sizes: Vec<i64> = PAGE_SIZES.to_vec();
        if !sizes.contains(&page.page_size) {
            sizes.push(page.page_size);
            sizes.sort_unstable();
        }
        Pager {
            number: page.number,
            num_pages: page.num_pages,
            count: page.count,
            first_row: if shown == 0 { 0 } else { page.offset() + 1 },
            last_row: page.offset() + shown as i64,
            first: before.then(|| to(1)),
            previous: before.then(|| to(page.number - 1)),
            next: after.then(|| to(page.number + 1)),
            last: after.then(|| to(page.num_pages)),
            page_size: page.page_size,
            page_sizes: sizes
                .into_iter()
                .map(|n| Choice::new(n.to_string(), n.to_string(), n == page.page_size))
                .collect(),
            hidden: links.hidden_except(&["page", "page_size"]),
        }
    }
}

/// One `<option>` of a select.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> Self {
        Self {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// Options for a select, with an "any" first entry, marking `current`.
pub fn choices(values: &[&str], current: &str) -> Vec<Choice> {
    std::iter::once(Choice::new("", "any", current.is_empty()))
        .chain(values.iter().map(|v| Choice::new(*v, *v, *v == current)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(q: &str) -> QueryLinks {
        QueryLinks::new(
            "/customers",
            &Params::parse(q).unwrap_or_default(),
            &["search", "status", "ordering", "page", "page_size"],
        )
    }

    #[test]
    fn links_keep_known_parameters_and_encode_them() {
        let l = links("foo=1&search=a%26b+c&status=active&page=3");
        assert_eq!(
            l.href(&[("page", Some("4"))]),
            "/customers?search=a%26b%20c&status=active&page=4"
        );
        assert_eq!(
            l.href(&[("page", None), ("search", None), ("status", None)]),
            "/customers"
        );
    }

    #[test]
    fn sort_links_toggle_the_direction() {
        use crate::query::CustomerField;
        let l = links("ordering=full_name&page=2");
        let asc = [OrderBy {
            field: CustomerField::FullName,
            descending: false,
        }];
        let s = sort_link(&l, &asc, CustomerField::FullName, "full_name", "Name");
        assert_eq!(s.state, "ascending");
        assert_eq!(s.href, "/customers?ordering=-full_name");
        let s = sort_link(&l, &asc, CustomerField::Id, "id", "Id");
        assert_eq!(s.href, "/customers?ordering=id");
    }
}
