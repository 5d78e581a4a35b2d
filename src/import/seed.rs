//! `openspp seed --synthetic N [--seed S]` (CONTRACT §10): a realistic synthetic population —
//! households of varied size with heads, spouses and children of plausible ages, genders,
//! addresses and identifiers, program memberships in every status, consents of every kind —
//! written as an NDJSON file and loaded through `openspp import`, so the sandbox and the
//! benchmarks exercise exactly the path a real migration takes. The same `N` and `S` give the
//! same file, byte for byte (and so the same identifiers), and a rerun loads nothing.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::PgPool;

use super::ImportArgs;

const NATIONAL_ID: &str = "urn:openspp:vocab:id-type#national_id";
const GROUP_SYSTEM: &str = "urn:openspp:group";
const ROLES: &str = "urn:openspp:vocab:group-membership-type";
const GENDER: &str = "urn:iso:std:iso:5218";
const MEMBERSHIP: &str = "urn:openspp:program-membership";

const FAMILY: [&str; 16] = [
    "Santos",
    "Reyes",
    "Cruz",
    "Bautista",
    "Ocampo",
    "Garcia",
    "Mendoza",
    "Torres",
    "Flores",
    "Ramos",
    "Aquino",
    "Castillo",
    "Villanueva",
    "Dela Cruz",
    "Navarro",
    "Soriano",
];
const GIVEN_F: [&str; 12] = [
    "Maria", "Ana", "Rosa", "Luz", "Carmen", "Josefina", "Teresa", "Liza", "Grace", "Joy",
    "Angelica", "Cristina",
];
const GIVEN_M: [&str; 12] = [
    "Jose", "Juan", "Pedro", "Antonio", "Manuel", "Ramon", "Carlos", "Miguel", "Rafael", "Mark",
    "Paolo", "Andres",
];
const CITIES: [(&str, &str); 8] = [
    ("Quezon City", "Metro Manila"),
    ("Cebu City", "Cebu"),
    ("Davao City", "Davao del Sur"),
    ("Iloilo City", "Iloilo"),
    ("Baguio", "Benguet"),
    ("Tacloban", "Leyte"),
    ("Zamboanga City", "Zamboanga del Sur"),
    ("Legazpi", "Albay"),
];
const STREETS: [&str; 8] = [
    "Mabini St",
    "Rizal Ave",
    "Bonifacio St",
    "Luna St",
    "Del Pilar St",
    "Quezon Blvd",
    "Burgos St",
    "Aguinaldo Hwy",
];
/// Who indicated a consent (every kind the contract names).
const DELEGATIONS: [&str; 5] = ["self", "guardian", "parent", "poa", "representative"];
const CONSENTED: [&str; 3] = ["individual", "group", "program_membership"];
const ORGANIZATIONS: [&str; 3] = ["Sandbox NGO", "Sandbox Health Office", "Sandbox Bank"];
const ORGANIZATION_TYPES: [&str; 3] = ["ngo", "government", "private"];

#[derive(clap::Args, Debug)]
pub struct SeedArgs {
    /// How many individuals to create (in households of 1 to 8).
    #[arg(long)]
    pub synthetic: u64,
    /// The seed: the same one gives the same population.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the NDJSON file that is then imported (default: the temporary
    /// directory, named by N and S).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the file and check it, load nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rows per batch (one commit each).
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
}

pub async fn run(pool: &PgPool, args: SeedArgs) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "openspp-seed-{}-{}.ndjson",
            args.synthetic, args.seed
        ))
    });
    let file =
        std::fs::File::create(&out).with_context(|| format!("cannot write {}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    for row in Population::new(args.synthetic, args.seed) {
        writeln!(writer, "{row}")?;
    }
    writer.flush()?;
    drop(writer);
    super::run(
        pool,
        ImportArgs {
            file: out,
            mapping: None,
            dry_run: args.dry_run,
            batch_size: args.batch_size,
            report: None,
            pause_ms: 0,
        },
    )
    .await
}

/// The rows of a synthetic population, in an order the import can load (programs first,
/// each household's members before the household, a membership before its changes).
pub struct Population {
    rng: StdRng,
    seed: u64,
    remaining: u64,
    person: u64,
    household: u64,
    membership: u64,
    queue: std::collections::VecDeque<Value>,
}

impl Population {
    pub fn new(individuals: u64, seed: u64) -> Self {
        let mut population = Self {
            rng: StdRng::seed_from_u64(seed),
            seed,
            remaining: individuals,
            person: 0,
            household: 0,
            membership: 0,
            queue: Default::default(),
        };
        for (name, target) in [("Cash", "group"), ("Health", "individual")] {
            population.queue.push_back(json!({
                "type": "Program",
                "name": population.program_name(name),
                "targetType": target,
                "currency": "PHP",
                "description": "A synthetic program of the sandbox population",
            }));
        }
        population
    }

    fn program_name(&self, kind: &str) -> String {
        format!("Synthetic {kind} S{}", self.seed)
    }

    fn program_reference(&self, kind: &str) -> String {
        let name = self.program_name(kind).to_lowercase().replace(' ', "-");
        format!("Program/urn:openspp:program|{name}")
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.gen_range(0..items.len())]
    }

    /// A person of `age` and `gender` (`1` male, `2` female) in `family`, living at `address`.
    fn person(&mut self, family: &str, age: u32, gender: &str, address: &Value) -> (Value, String) {
        self.person += 1;
        let id = format!("SYN{}-{:08}", self.seed, self.person);
        let given = if gender == "2" {
            self.pick(&GIVEN_F)
        } else {
            self.pick(&GIVEN_M)
        };
        let year = 2025 - age as i32;
        let month = self.rng.gen_range(1..=12);
        let day = self.rng.gen_range(1..=28);
        let mut person = json!({
            "type": "Individual",
            "identifier": [{"system": NATIONAL_ID, "value": id}],
            "name": {"family": family, "given": given},
            "birthDate": format!("{year:04}-{month:02}-{day:02}"),
            "gender": {"coding": [{"system": GENDER, "code": gender}]},
            "address": [address],
        });
        if age >= 18 && self.rng.gen_bool(0.6) {
            let phone = format!("+63917{:07}", self.rng.gen_range(0..10_000_000));
            person["telecom"] = json!([{"system": "phone", "value": phone, "use": "mobile"}]);
        }
        (person, id)
    }

    /// One household: its members, the group, its memberships and consents.
    fn household(&mut self) {
        self.household += 1;
        let size = [1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6, 7, 8][self.rng.gen_range(0..13)];
        let size = size.min(self.remaining as usize).max(1);
        self.remaining -= size as u64;
        let family = self.pick(&FAMILY);
        let (city, province) = CITIES[self.rng.gen_range(0..CITIES.len())];
        let address = json!({
            "type": "physical",
            "line": [format!("{} {}", self.rng.gen_range(1..400), self.pick(&STREETS))],
            "city": city, "state": province, "country": "PH",
        });
        let head_gender = if self.rng.gen_bool(0.5) { "1" } else { "2" };
        let head_age = self.rng.gen_range(22..75);
        let mut members = Vec::new();
        for n in 0..size {
            let (role, age, gender) = match n {
                0 => ("head", head_age, head_gender),
                1 if self.rng.gen_bool(0.75) => (
                    "spouse",
                    (head_age as i32 + self.rng.gen_range(-6..6)).clamp(18, 90) as u32,
                    if head_gender == "1" { "2" } else { "1" },
                ),
                _ => (
                    "child",
                    self.rng.gen_range(0..(head_age - 17).clamp(1, 25)),
                    if self.rng.gen_bool(0.5) { "1" } else { "2" },
                ),
            };
            let (person, id) = self.person(family, age, gender, &address);
            self.queue.push_back(person);
            members.push((id, role, age));
        }
        let group = format!("SYN{}-H{:07}", self.seed, self.household);
        self.queue.push_back(json!({
            "type": "Group",
            "identifier": [{"system": GROUP_SYSTEM, "value": group}],
            "groupType": "household",
            "name": format!("{family} Household {group}"),
            "address": [address],
            "member": members.iter().map(|(id, role, _)| json!({
                "entity": {"reference": format!("Individual/{NATIONAL_ID}|{id}")},
                "role": {"coding": [{"system": ROLES, "code": role}]},
            })).collect::<Vec<_>>(),
        }));
        let household_reference = format!("Group/{GROUP_SYSTEM}|{group}");
        self.memberships(&household_reference, "Cash");
        // Children's health enrolment: individual memberships.
        for (id, _, _) in members.iter().filter(|(_, _, age)| *age < 5) {
            let beneficiary = format!("Individual/{NATIONAL_ID}|{id}");
            self.memberships(&beneficiary, "Health");
        }
        self.consent(&household_reference, &members[0].0);
    }

    /// A membership of `beneficiary` in program `kind`, taken through the state machine to one
    /// of every status, as the household's history would have it.
    fn memberships(&mut self, beneficiary: &str, kind: &str) {
        if !self.rng.gen_bool(0.7) {
            return;
        }
        let program = self.program_reference(kind);
        self.membership += 1;
        let identifier = format!("SYN{}-M{:08}", self.seed, self.membership);
        let path = format!("ProgramMembership/{MEMBERSHIP}|{identifier}");
        let body = |status: &str| {
            json!({"type": "ProgramMembership",
                   "identifier": [{"system": MEMBERSHIP, "value": identifier}],
                   "program": {"reference": program},
                   "beneficiary": {"reference": beneficiary}, "status": status})
        };
        let journey: &[&str] = match self.rng.gen_range(0..10) {
            0 => &["draft"],
            1 => &["draft", "not_eligible"],
            2 => &["draft", "duplicated"],
            3 => &["enrolled", "paused"],
            4 => &["enrolled", "exited"],
            _ => &["enrolled"],
        };
        for (step, status) in journey.iter().enumerate() {
            if step == 0 {
                let mut enrol = body(status);
                if *status == "enrolled" {
                    enrol["enrollmentDate"] = json!("2025-01-15");
                }
                self.queue.push_back(enrol);
                continue;
            }
            let mut change = body(status);
            if *status == "exited" {
                change["exitDate"] = json!("2025-06-30");
                change["exitReason"] = json!({"coding": [{"system": "urn:openspp:vocab:exit-reason", "code": "graduated"}]});
            }
            self.queue.push_back(json!({
                "request": {"method": "PUT", "url": path},
                "resource": change,
            }));
        }
    }

    /// A consent of the household's head (or, for a household, of the household), of one of
    /// every kind: specific organisations or organisation types, each way of indicating it,
    /// each resource it may cover.
    fn consent(&mut self, household: &str, head: &str) {
        if !self.rng.gen_bool(0.5) {
            return;
        }
        let n = self.household as usize;
        let (mode, recipients, types) = if n.is_multiple_of(2) {
            ("specific", vec![ORGANIZATIONS[n / 2 % 3]], Vec::new())
        } else {
            ("category", Vec::new(), vec![ORGANIZATION_TYPES[n / 2 % 3]])
        };
        let resource = CONSENTED[n % 3];
        let subject = if resource == "group" {
            household.to_owned()
        } else {
            format!("Individual/{NATIONAL_ID}|{head}")
        };
        let delegation = DELEGATIONS[n % DELEGATIONS.len()];
        let mut consent = json!({
            "request": {"method": "POST", "url": "Consent"},
            "resource": {
                "subject": subject,
                "recipient_mode": mode,
                "recipients": recipients,
                "recipient_types": types,
                "scopes": [{"resource_type": resource, "field_access": null, "purpose": "service_delivery"}],
                "legal_basis": "consent",
                "expiry_date": "2099-12-31",
                "delegation_type": delegation,
            },
        });
        if delegation != "self" {
            consent["resource"]["indicated_by"] = json!(format!("the subject's {delegation}"));
        }
        self.queue.push_back(consent);
    }
}

impl Iterator for Population {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        while self.queue.is_empty() && self.remaining > 0 {
            self.household();
        }
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_population() {
        let a: Vec<Value> = Population::new(200, 7).collect();
        let b: Vec<Value> = Population::new(200, 7).collect();
        let c: Vec<Value> = Population::new(200, 8).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let people = a.iter().filter(|r| r["type"] == "Individual").count();
        assert_eq!(people, 200);
        let statuses: std::collections::BTreeSet<&str> = a
            .iter()
            .filter_map(|r| {
                r.get("request")
                    .map_or(r, |_| &r["resource"])
                    .get("status")?
                    .as_str()
            })
            .collect();
        for status in [
            "draft",
            "enrolled",
            "paused",
            "exited",
            "not_eligible",
            "duplicated",
        ] {
            assert!(statuses.contains(status), "{status} missing");
        }
    }
}
