//! Deterministic demo data: the same seed always gives the same rows.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::db::models::{NewCustomer, Operator};
use crate::db::schema::{customers, operators};
use crate::db::{DbConn, write_transaction};
use crate::import::bulk::{InitialLoad, LOAD_BATCH_ROWS};
use crate::import::{ImportError, Progress, bump_data_version, insert_operators};

const FIRST_NAMES: &[&str] = &[
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Elif",
    "François",
    "Grace",
    "Hiroshi",
    "Inês",
    "Jakub",
    "Karin",
    "Liam",
    "María",
    "Noah",
    "Olga",
    "Paul",
    "Quentin",
    "Rosa",
    "Søren",
    "Tomás",
    "Ursula",
    "Viktor",
    "Wei",
    "Xavier",
    "Yara",
    "Zoë",
    "Émile",
    "Łukasz",
    "Björn",
    "Aoife",
    "Siobhán",
    "Mohammed",
    "Priya",
    "Kwame",
    "Lucía",
    "Giulia",
    "Mateus",
    "Hana",
    "Oren",
    "Nadia",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Müller",
    "O'Brien",
    "García",
    "Rossi",
    "Kowalski",
    "Nguyen",
    "Dubois",
    "Jensen",
    "Novák",
    "Silva",
    "Yılmaz",
    "Andersson",
    "Schmidt",
    "Smithson",
    "Papadopoulos",
    "Ivanova",
    "Fernández",
    "D'Angelo",
    "Van der Berg",
    "Okafor",
    "Tanaka",
    "Kim",
    "Larsen",
    "Horváth",
    "Ó Súilleabháin",
    "Brown",
    "Wilson",
    "Martin",
    "Lefèvre",
    "Nowak",
    "Costa",
    "Øster",
    "Ek",
];
const CITIES: &[(&str, &str)] = &[
    ("DE", "Berlin"),
    ("DE", "München"),
    ("FR", "Paris"),
    ("FR", "Lyon"),
    ("GB", "London"),
    ("GB", "Manchester"),
    ("IE", "Dublin"),
    ("ES", "Madrid"),
    ("ES", "Sevilla"),
    ("IT", "Roma"),
    ("PL", "Kraków"),
    ("SE", "Göteborg"),
    ("DK", "København"),
    ("NL", "Amsterdam"),
    ("PT", "Lisboa"),
    ("US", "New York"),
    ("US", "Austin"),
    ("JP", "Tokyo"),
    ("BR", "São Paulo"),
    ("TR", "İstanbul"),
    ("CZ", "Praha"),
    ("AT", "Wien"),
    ("CH", "Zürich"),
    ("NO", "Tromsø"),
];
const OPERATOR_WORDS: &[&str] = &[
    "Nordwind",
    "Helios",
    "Atlas",
    "Brightline",
    "Cobalt",
    "Meridian",
    "Polaris",
    "Vega",
    "Quanta",
    "Lumen",
    "Orbit",
    "Summit",
    "Harbor",
    "Kestrel",
    "Aurora",
    "Zephyr",
];
const OPERATOR_SUFFIXES: &[&str] = &["Telecom", "Energy", "Mobile", "Networks", "Utilities"];
const MAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.example.net",
    "example.de",
];

/// How much demo data to make.
#[derive(Debug, Clone, Copy)]
pub struct SeedPlan {
    pub customers: u64,
    pub operators: u64,
    pub seed: u64,
}

/// Rows per insert statement and per progress step.
const BATCH: usize = 1000;

/// Fills empty operator and customer tables with generated rows, in one
/// transaction. Refuses to mix demo data into existing data.
pub fn seed(conn: &mut DbConn, plan: SeedPlan, progress: &dyn Progress) -> Result<(), ImportError> {
    if plan.operators == 0 && plan.customers > 0 {
        return Err(ImportError::File(
            "customers need at least one operator".into(),
        ));
    }
    let result = write_transaction(conn, |conn| {
        bump_data_version(conn)?;
        let existing_ops: i64 = operators::table.count().get_result(conn)?;
        let existing_customers: i64 = customers::table.count().get_result(conn)?;
        if existing_ops > 0 || existing_customers > 0 {
            return Err(ImportError::File(format!(
                "the database already holds {existing_ops} operators and {existing_customers} \
                 customers; seed only fills an empty database"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
        let ops: Vec<Operator> = (1..=plan.operators as i64)
            .map(|id| operator(&mut rng, id))
            .collect();
        for chunk in ops.chunks(BATCH) {
            insert_operators(conn, chunk)?;
        }
        let load = InitialLoad::begin_if_empty(conn)?
            .ok_or_else(|| ImportError::File("customers appeared during the seed".into()))?;
        let mut batch = Vec::with_capacity(LOAD_BATCH_ROWS);
        for id in 1..=plan.customers as i64 {
            batch.push(customer(&mut rng, id, plan.operators as i64));
            if batch.len() == LOAD_BATCH_ROWS {
                load.insert(conn, &batch)?;
                batch.clear();
                progress.advance(id as u64);
            }
        }
        load.insert(conn, &batch)?;
        load.finish(conn)?;
        progress.advance(plan.customers);
        Ok(())
    });
    progress.finish();
    result
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    // The slices are constant and non-empty.
    &items[rng.gen_range(0..items.len())]
}

fn random_time(rng: &mut ChaCha8Rng) -> NaiveDateTime {
    let start = NaiveDate::from_ymd_opt(2019, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    start + Duration::seconds(rng.gen_range(0..6 * 365 * 86400))
}

fn operator(rng: &mut ChaCha8Rng, id: i64) -> Operator {
    let word = pick(rng, OPERATOR_WORDS);
    let suffix = pick(rng, OPERATOR_SUFFIXES);
    let (country, _) = *pick(rng, CITIES);
    Operator {
        id,
        name: format!("{word} {suffix} {id}"),
        country: country.to_owned(),
        support_email: format!("support@{}{id}.example.com", word.to_lowercase()),
        created_at: random_time(rng),
    }
}

fn ascii_slug(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'é' | 'è' | 'É' => Some('e'),
            'á' | 'ã' | 'Á' => Some('a'),
            'ó' | 'ö' | 'Ó' | 'ø' | 'Ø' => Some('o'),
            'ü' | 'ú' => Some('u'),
            'í' | 'ı' | 'İ' => Some('i'),
            'ç' => Some('c'),
            'ł' | 'Ł' => Some('l'),
            'ñ' => Some('n'),
            _ => None,
        })
        .collect()
}

fn customer(rng: &mut ChaCha8Rng, id: i64, operator_count: i64) -> NewCustomer {
    let first = pick(rng, FIRST_NAMES);
    let last = pick(rng, LAST_NAMES);
    let full_name = format!("{first} {last}");
    let email = format!(
        "{}.{}{}@{}",
        ascii_slug(first),
        ascii_slug(last),
        id,
        pick(rng, MAIL_DOMAINS)
    );
    let phone = format!(
        "+{} {} {:07}",
        rng.gen_range(1..99),
        rng.gen_range(10..999),
        rng.gen_range(0..10_000_000)
    );
    let (country, city) = *pick(rng, CITIES);
    let plan = *[("basic", 6), ("plus", 3), ("pro", 1)]
        .choose_weighted(rng, |p| p.1)
        .map(|p| &p.0)
        .unwrap_or(&"basic");
    let status = *[("active", 8), ("suspended", 1), ("closed", 1)]
        .choose_weighted(rng, |p| p.1)
        .map(|p| &p.0)
        .unwrap_or(&"active");
    let search_text = NewCustomer::search_text_for(&full_name, &email, &phone);
    NewCustomer {
        id,
        operator_id: rng.gen_range(1..=operator_count),
        full_name,
        email,
        phone,
        city: city.to_owned(),
        country: country.to_owned(),
        plan: plan.to_owned(),
        status: status.to_owned(),
        created_at: random_time(rng),
        search_text,
    }
}
