//! The read paths of migration 0016 answer what the scans they replace
//! answered: people search by trigram (SQLite) returns every person a
//! substring scan finds, and the approver index finds every current
//! account whose approver is an address, as the engine's check would.

use std::collections::{BTreeMap, BTreeSet};

use roster_core::{
    Account, AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus, Observed, Person,
};
use roster_store::{PersonOverride, Store};

mod common;

fn person(id: &str, first: &str, last: &str, mail: &str, aliases: &[&str]) -> Person {
    Person {
        employee_id: EmployeeId::new(id),
        email: Email::parse(mail).unwrap(),
        aliases: aliases.iter().map(|a| Email::parse(a).unwrap()).collect(),
        first_name: first.into(),
        last_name: last.into(),
        department: "Engineering".into(),
        cost_center: "CC-1".into(),
        manager_email: None,
        status: EmploymentStatus::Active,
        start_date: None,
        end_date: None,
        groups: vec![],
        attributes: BTreeMap::from([("title".to_string(), "Staff Engineer".to_string())]),
    }
}

/// What a search for `needle` must find: the REST API's exact check.
fn matches(p: &Person, needle: &str) -> bool {
    format!("{} {}", p.first_name, p.last_name)
        .to_lowercase()
        .contains(needle)
        || p.employee_id.as_str().to_lowercase().contains(needle)
        || p.email.normalized().contains(needle)
        || p.aliases.iter().any(|a| a.normalized().contains(needle))
}

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    (s, dir)
}

#[tokio::test]
async fn trigram_search_finds_everyone_a_scan_finds_and_follows_every_write() {
    let (store, _dir) = store().await;
    let mut people = vec![
        person("E001", "Alice", "Martin", "alice.martin@acme.example", &[]),
        person(
            "E002",
            "Bob",
            "Alison",
            "bob@acme.example",
            &["b.alison@old.example"],
        ),
        person("E003", "Chloé", "Dupont", "chloe@acme.example", &[]),
        person("E010", "Dan", "O\"Brien", "dan@acme.example", &[]),
        person("E100", "Eve", "Smith", "eve.smith@acme.example", &[]),
    ];
    store.replace_people(&people).await.unwrap();
    let needles = [
        "ali",
        "alice",
        "martin",
        "e00",
        "e1",
        "acme.example",
        "old.example",
        "b.alison",
        "chloé",
        "o\"brien",
        "n m",
        "zzz",
        "staff",
        "%",
        "_",
    ];
    let check = async |people: &[Person]| {
        for needle in needles {
            let want: BTreeSet<String> = people
                .iter()
                .filter(|p| matches(p, needle))
                .map(|p| p.employee_id.as_str().to_string())
                .collect();
            let got: BTreeSet<String> = store
                .people_containing(needle, None, 1000)
                .await
                .unwrap()
                .iter()
                .map(|p| p.employee_id.as_str().to_string())
                .collect();
            assert!(got.is_superset(&want), "{needle:?}: {got:?} ⊉ {want:?}");
            let trigram = store.people_by_trigram(needle, None, 1000).await.unwrap();
            assert_eq!(trigram.is_some(), needle.chars().count() >= 3, "{needle:?}");
        }
    };
    check(&people).await;
    // Pages: after a key, in key order, at most `limit`.
    let page = store
        .people_containing("acme", Some("E002"), 2)
        .await
        .unwrap();
    let ids: Vec<&str> = page.iter().map(|p| p.employee_id.as_str()).collect();
    assert_eq!(ids, ["E003", "E010"]);

    // The index follows a new snapshot (triggers on every write).
    people.remove(0);
    people.push(person(
        "E200",
        "Alina",
        "Kowalski",
        "alina@acme.example",
        &[],
    ));
    store.replace_people(&people).await.unwrap();
    check(&people).await;
    let found = store.people_containing("alice", None, 10).await.unwrap();
    assert!(found.is_empty(), "a removed person is not found: {found:?}");
    let found = store.people_containing("kowal", None, 10).await.unwrap();
    assert_eq!(found.len(), 1);
}

fn account(conn: &str, key: &str, attrs: &[(&str, &str)]) -> Account {
    Account {
        connection: ConnectionId::new(conn),
        key: AccountKey::new(key),
        email: Some(Email::parse(&format!("{key}@acme.example")).unwrap()),
        employee_id: None,
        active: true,
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test]
async fn the_approver_index_finds_current_accounts_pointing_at_an_address() {
    let (store, _dir) = store().await;
    store
        .replace_accounts(
            &Observed::complete(
                ConnectionId::new("expensify"),
                vec![
                    account(
                        "expensify",
                        "a",
                        &[("manager_email", " Boss@Acme.example ")],
                    ),
                    account("expensify", "b", &[("approves_to", "boss@acme.example")]),
                    account("expensify", "c", &[("manager_email", "other@acme.example")]),
                    account("expensify", "d", &[]),
                ],
            ),
            1_000,
        )
        .await
        .unwrap();
    // An incomplete later read keeps `b` stored but not current.
    store
        .replace_accounts(
            &Observed {
                connection: ConnectionId::new("expensify"),
                accounts: vec![
                    account("expensify", "a", &[("manager_email", "boss@acme.example")]),
                    account("expensify", "c", &[("manager_email", "other@acme.example")]),
                ],
                complete: false,
                incomplete_reason: Some("page 2 failed".into()),
            },
            2_000,
        )
        .await
        .unwrap();
    store
        .replace_accounts(
            &Observed::complete(
                ConnectionId::new("spendesk"),
                vec![account(
                    "spendesk",
                    "e",
                    &[("approves_to", "BOSS@acme.example")],
                )],
            ),
            1_000,
        )
        .await
        .unwrap();
    let found: Vec<(String, String)> = store
        .accounts_pointing_at(&["boss@acme.example".to_string()])
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.connection.to_string(), a.key.to_string()))
        .collect();
    assert_eq!(
        found,
        [
            ("expensify".to_string(), "a".to_string()),
            ("spendesk".to_string(), "e".to_string())
        ]
    );
    assert!(
        store
            .accounts_pointing_at(&["nobody@acme.example".to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.accounts_pointing_at(&[]).await.unwrap().is_empty());
}

/// SQLite's search pages through the trigram index in rowid order, which
/// follows employee IDs because `replace_people` writes in that order
/// whatever order the snapshot came in: pages of a common name, a rare one
/// and a clustered one come out exactly as sorting every match would give.
#[tokio::test]
async fn trigram_pages_come_in_employee_id_order_whatever_the_snapshot_order() {
    let (store, _dir) = store().await;
    // Shuffled by a fixed permutation; last names clustered by ID range, as
    // HR systems that number by hiring wave do.
    let mut people: Vec<Person> = (0..600usize)
        .map(|i| {
            let j = (i * 389) % 600;
            person(
                &format!("E{j:04}"),
                ["Ada", "Bea", "Cal"][j % 3],
                &format!("Wave{}", j / 50),
                &format!("p{j}@acme.example"),
                &[],
            )
        })
        .collect();
    for round in 0..2 {
        store.replace_people(&people).await.unwrap();
        for needle in ["wave1", "wave11", "ada", "e059", "p599@", "nobody"] {
            let mut want: Vec<String> = people
                .iter()
                .filter(|p| matches(p, needle))
                .map(|p| p.employee_id.as_str().to_string())
                .collect();
            want.sort();
            let mut got = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .people_by_trigram(needle, after.as_deref(), 7)
                    .await
                    .unwrap()
                    .expect("a needle of three characters or more");
                let done = page.len() < 7;
                after = page.last().map(|p| p.employee_id.as_str().to_string());
                got.extend(page.iter().map(|p| p.employee_id.as_str().to_string()));
                if done {
                    break;
                }
            }
            assert_eq!(got, want, "round {round}, {needle:?}");
        }
        // The next snapshot in another order, with people gone and new.
        people.reverse();
        people.truncate(550);
        people.push(person("E0000A", "Ada", "Wave1", "new@acme.example", &[]));
    }
}

/// A company large enough for the search to leave its common trigrams out
/// of the query (search.rs): every page, filtered exactly, is still every
/// person a scan finds, in employee-ID order, page after page.
#[tokio::test]
async fn trigram_search_without_common_trigrams_still_finds_everyone() {
    let (store, _dir) = store().await;
    // Every 250th person has a name SQLite's `lower` cannot fold (it
    // folds ASCII only): the store's own check must let them through.
    let people: Vec<Person> = (0..3_000usize)
        .map(|i| {
            let (first, last) = if i % 250 == 7 {
                (format!("ÅSA{}", i % 100), format!("ÖLANDER{}", i % 37))
            } else {
                (format!("First{}", i % 100), format!("Last{}", i % 37))
            };
            person(
                &format!("E{:07}", i + 1),
                &first,
                &last,
                &format!("first{}.last{}.{i}@corp.example", i % 100, i % 37),
                &[],
            )
        })
        .collect();
    store.replace_people(&people).await.unwrap();
    for needle in [
        "first2.last0",
        "first77.last3",
        "e0000003",
        "last7",
        "first2.last0.1702@corp.example",
        "corp.example",
        "nobody",
        "ölander1",
        "åsa7 ö",
    ] {
        let mut want: Vec<String> = people
            .iter()
            .filter(|p| matches(p, needle))
            .map(|p| p.employee_id.as_str().to_string())
            .collect();
        want.sort();
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .people_by_trigram(needle, after.as_deref(), 21)
                .await
                .unwrap()
                .expect("a needle of three characters or more");
            let done = page.len() < 21;
            after = page.last().map(|p| p.employee_id.as_str().to_string());
            got.extend(
                page.iter()
                    .filter(|p| matches(p, needle))
                    .map(|p| p.employee_id.as_str().to_string()),
            );
            if done {
                break;
            }
        }
        assert_eq!(got, want, "{needle:?}");
    }
    // Rare runs match far more rows than the needle (`last7` is searched
    // by what `first7…` has too); the store checks the needle itself, so
    // a page of an ASCII needle holds only its matches, in order, but for
    // the non-ASCII bodies the check lets through unchecked.
    let page = store
        .people_by_trigram("last7", None, 21)
        .await
        .unwrap()
        .unwrap();
    let (hits, passed): (Vec<&Person>, Vec<&Person>) =
        page.iter().partition(|p| matches(p, "last7"));
    assert!(
        passed.iter().all(|p| !p.first_name.is_ascii()),
        "an ASCII body without the needle came through: {passed:?}"
    );
    let want: Vec<&str> = people
        .iter()
        .filter(|p| matches(p, "last7"))
        .take(hits.len())
        .map(|p| p.employee_id.as_str())
        .collect();
    let got: Vec<&str> = hits.iter().map(|p| p.employee_id.as_str()).collect();
    assert_eq!(got, want);
    assert!(hits.len() >= 19, "{} hits in a page of 21", hits.len());
}

/// PostgreSQL's people search (migration 0023): the trigram index exists
/// when pg_trgm does (scripts/postgres.sh installs it in `public`), the
/// planner uses it for a substring search, and the answer is what a scan
/// finds, in key order, page by page. One person's override reads alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_search_uses_the_trigram_index_and_finds_what_a_scan_finds() {
    common::harness::run_postgres("pg_trigram_search", postgres_search_case).await;
}

async fn postgres_search_case(fx: common::harness::Fx) {
    {
        let store = fx.store.clone();
        let mut people: Vec<Person> = (0..400)
            .map(|i| {
                person(
                    &format!("E{i:04}"),
                    ["Alice", "Bob", "Chloé", "Dan"][i % 4],
                    &format!("Surname{}", i % 37),
                    &format!("user{i}@acme.example"),
                    &[],
                )
            })
            .collect();
        people.push(person(
            "E9999",
            "Zed",
            "Quixotic",
            "zq@acme.example",
            &["zed.q@old.example"],
        ));
        store.replace_people(&people).await.unwrap();

        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&fx.raw_url)
            .await
            .unwrap();
        let indexed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname = 'person_data_trgm'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(indexed, 1, "migration 0023 built the trigram index");
        // With the sequential scan priced out, the substring match reads the
        // index (a small table would otherwise be scanned whatever exists).
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut conn)
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN SELECT employee_id FROM person WHERE lower(data) LIKE '%quixotic%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("person_data_trgm")),
            "the planner can use the index: {plan:#?}"
        );

        for needle in ["quixotic", "surname3", "zed.q@old", "e00", "chloé", "zzz"] {
            let want: Vec<String> = people
                .iter()
                .filter(|p| matches(p, needle))
                .map(|p| p.employee_id.as_str().to_string())
                .collect();
            let mut got = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .people_containing(needle, after.as_deref(), 7)
                    .await
                    .unwrap();
                let done = page.len() < 7;
                after = page.last().map(|p| p.employee_id.as_str().to_string());
                got.extend(
                    page.iter()
                        .filter(|p| matches(p, needle))
                        .map(|p| p.employee_id.as_str().to_string()),
                );
                if done {
                    break;
                }
            }
            assert_eq!(got, want, "{needle:?}");
        }

        let e1 = EmployeeId::new("E0001");
        assert!(store.person_override(&e1).await.unwrap().is_none());
        store
            .set_person_override(&PersonOverride {
                employee_id: e1.clone(),
                status: "terminated".into(),
                actor: "cli:alice".into(),
                reason: "left".into(),
                at_ms: 1,
            })
            .await
            .unwrap();
        let found = store.person_override(&e1).await.unwrap().unwrap();
        assert_eq!(
            (found.status.as_str(), found.reason.as_str()),
            ("terminated", "left")
        );
        let (p, o) = store.person_with_override(&e1).await.unwrap().unwrap();
        assert_eq!(p.employee_id, e1);
        assert_eq!(o.map(|o| o.actor), Some("cli:alice".to_string()));
        let (_, o) = store
            .person_with_override(&EmployeeId::new("E0002"))
            .await
            .unwrap()
            .unwrap();
        assert!(o.is_none());
        assert!(
            store
                .person_with_override(&EmployeeId::new("nobody"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .person_override(&EmployeeId::new("E0002"))
                .await
                .unwrap()
                .is_none()
        );
    }
}
