//! What one beneficiary is entitled to in one cycle: cash in the program's currency, or goods
//! (OpenSPP `spp.entitlement` and `spp.entitlement.inkind`), with OpenSPP's approval and
//! payment states. An entitlement is only for a beneficiary enrolled in the cycle's program,
//! is added while the cycle is draft, approved while the cycle is under approval or approved,
//! and paid while it is approved or distributed. It names a beneficiary, so every command
//! needs the beneficiary's consent (for program participation, `program_membership`) or a
//! legal basis. The identifier is a minted code, as OpenSPP's.

use chrono::{Months, NaiveDate};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::consent::Access;
use crate::cycle::CycleState;
use crate::error::DomainError;
use crate::inline_index::{IndexChange, InlineIndex};
use crate::services::RegistryServices;
use crate::transition;
use crate::values::Identifier;
use crate::vocabulary::TargetType;

/// The system of entitlement codes.
pub const CODE_SYSTEM: &str = "urn:openspp:entitlement";
/// The consent an entitlement is seen and changed under: the beneficiary's, for program
/// participation (an entitlement is part of it).
pub const CONSENT_RESOURCE: &str = "program_membership";
/// The largest amount, in hundredths, an entitlement may hold (exact in a JSON number).
pub const MAX_CENTS: i64 = 100_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntitlementState {
    #[serde(rename = "draft")]
    Draft,
    #[serde(rename = "pending_validation")]
    PendingValidation,
    #[serde(rename = "approved")]
    Approved,
    /// Transferred to the financial service provider.
    #[serde(rename = "trans2FSP")]
    Trans2Fsp,
    /// Redeemed by, or paid to, the beneficiary.
    #[serde(rename = "rdpd2ben")]
    Rdpd2ben,
    /// The beneficiary did not want it.
    #[serde(rename = "rejected1")]
    Rejected1,
    /// The beneficiary's account does not exist.
    #[serde(rename = "rejected2")]
    Rejected2,
    /// Rejected for another reason (the approval's rejection).
    #[serde(rename = "rejected3")]
    Rejected3,
    #[serde(rename = "cancelled")]
    Cancelled,
    #[serde(rename = "expired")]
    Expired,
}

crate::wire_names!(EntitlementState {
    Draft => "draft",
    PendingValidation => "pending_validation",
    Approved => "approved",
    Trans2Fsp => "trans2FSP",
    Rdpd2ben => "rdpd2ben",
    Rejected1 => "rejected1",
    Rejected2 => "rejected2",
    Rejected3 => "rejected3",
    Cancelled => "cancelled",
    Expired => "expired",
});

impl EntitlementState {
    /// Where an entitlement may go from here (OpenSPP `entitlement_base_model.py`): submitted
    /// or cancelled from draft; approved, rejected, cancelled or reset while pending; an
    /// approved one is transferred to the payment provider or expires; the provider pays it or
    /// reports it refused; a rejected or cancelled one may be reset to draft.
    pub fn next(self) -> &'static [Self] {
        use EntitlementState::*;
        match self {
            Draft => &[PendingValidation, Cancelled],
            PendingValidation => &[Approved, Rejected3, Cancelled, Draft],
            Approved => &[Trans2Fsp, Expired],
            Trans2Fsp => &[Rdpd2ben, Rejected1, Rejected2],
            Rdpd2ben | Expired => &[],
            Rejected1 | Rejected2 | Rejected3 | Cancelled => &[Draft],
        }
    }

    /// Where an entitlement of `kind` in this state goes when its cycle moves `from` → `to`
    /// (`None`: it stays), as OpenSPP's `spp.cycle` cascades (`models/cycle.py`):
    /// - submitted (`draft` → `to_approve`): the program's entitlement manager moves the
    ///   cycle's `draft` entitlements to `pending_validation` (`set_pending_validation_
    ///   entitlements`; the cash and the in-kind managers each their own kind);
    /// - rejected (`to_approve` → `cancelled`, `_do_reject`): its pending cash entitlements
    ///   are cancelled;
    /// - reset (`to_approve` or `cancelled` → `draft`, `action_reset_to_draft`): its pending
    ///   and cancelled cash entitlements are reset to draft.
    ///
    /// The last two touch the cycle's `entitlement_ids`, which are cash entitlements only:
    /// in-kind entitlements stay where they are, as in OpenSPP. Approving a cycle moves no
    /// entitlement (OpenSPP only does with `auto_approve_entitlements`, which this server's
    /// cycles do not have), nor does distributing, ending or cancelling an approved one.
    pub fn with_cycle(
        self,
        kind: EntitlementKind,
        from: CycleState,
        to: CycleState,
    ) -> Option<Self> {
        use EntitlementState::*;
        let cash = kind == EntitlementKind::Cash;
        match (from, to, self) {
            (CycleState::Draft, CycleState::ToApprove, Draft) => Some(PendingValidation),
            (CycleState::ToApprove, CycleState::Cancelled, PendingValidation) if cash => {
                Some(Cancelled)
            }
            (CycleState::ToApprove | CycleState::Cancelled, CycleState::Draft, s)
                if cash && matches!(s, PendingValidation | Cancelled) =>
            {
                Some(Draft)
            }
            _ => None,
        }
    }

    /// The states in which some entitlement moves when its cycle moves `from` → `to` (see
    /// [`with_cycle`](Self::with_cycle)): the ones a cascade has to look at.
    pub fn moved_by_cycle(from: CycleState, to: CycleState) -> Vec<Self> {
        Self::ALL
            .iter()
            .copied()
            .filter(|state| {
                [EntitlementKind::Cash, EntitlementKind::Inkind]
                    .into_iter()
                    .any(|kind| state.with_cycle(kind, from, to).is_some())
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntitlementKind {
    Cash,
    Inkind,
}

crate::wire_names!(EntitlementKind { Cash => "cash", Inkind => "inkind" });

/// An amount in hundredths of a currency unit (exact, unlike a float).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub cents: i64,
    /// ISO 4217.
    pub currency: String,
}

impl Money {
    /// `value` (a JSON number) as hundredths; `None` when it has more than two decimals or is
    /// out of range.
    pub fn cents_of(value: f64) -> Option<i64> {
        let scaled = value * 100.0;
        let cents = scaled.round();
        ((scaled - cents).abs() < 1e-6 && cents.abs() <= MAX_CENTS as f64).then_some(cents as i64)
    }

    /// The amount as a JSON number.
    pub fn value(&self) -> f64 {
        self.cents as f64 / 100.0
    }
}

/// What the entitlement gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Benefit {
    Cash {
        amount: Money,
    },
    Inkind {
        /// The product's identifier (default code, else name).
        product: String,
        quantity: f64,
        /// The unit of measure's name.
        unit: String,
        unit_price: Option<Money>,
        /// The service point's name.
        service_point: Option<String>,
    },
}

impl Benefit {
    pub fn kind(&self) -> EntitlementKind {
        match self {
            Self::Cash { .. } => EntitlementKind::Cash,
            Self::Inkind { .. } => EntitlementKind::Inkind,
        }
    }

    /// The cash amount, in hundredths (none for goods).
    pub fn cash_cents(&self) -> Option<i64> {
        match self {
            Self::Cash { amount } => Some(amount.cents),
            Self::Inkind { .. } => None,
        }
    }

    fn validate(&self, currency: &str) -> Result<(), DomainError> {
        match self {
            Self::Cash { amount } => {
                if amount.currency != currency {
                    return Err(DomainError::invalid(
                        "initialAmount.currency",
                        format!("must be the program's currency, {currency}"),
                    ));
                }
                if amount.cents <= 0 {
                    return Err(DomainError::invalid(
                        "initialAmount.value",
                        "must be more than zero",
                    ));
                }
            }
            Self::Inkind {
                product,
                quantity,
                unit,
                unit_price,
                service_point,
            } => {
                for (field, text) in [
                    ("items[0].product", product),
                    ("items[0].quantity.unit", unit),
                ] {
                    if text.trim().is_empty() {
                        return Err(DomainError::invalid(field, "must not be empty"));
                    }
                    bounds::text(field, text, bounds::SHORT_TEXT)?;
                }
                bounds::optional_text(
                    "servicePoint",
                    service_point.as_deref(),
                    bounds::SHORT_TEXT,
                )?;
                if !quantity.is_finite() || *quantity <= 0.0 || *quantity > 1e9 {
                    return Err(DomainError::invalid(
                        "items[0].quantity.value",
                        "must be more than zero",
                    ));
                }
                if let Some(price) = unit_price {
                    if price.currency != currency || price.cents < 0 {
                        return Err(DomainError::invalid(
                            "items[0].unitPrice",
                            format!("must be an amount in the program's currency, {currency}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The cycle as an entitlement command needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleFacts {
    pub stream: String,
    pub program: String,
    pub state: CycleState,
    pub start_date: NaiveDate,
    /// The program's currency.
    pub currency: String,
}

/// What a body says an entitlement is.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitlementDetails {
    pub benefit: Benefit,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub state: EntitlementState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EntitlementCommand {
    Create {
        cycle: CycleFacts,
        beneficiary: String,
        beneficiary_type: TargetType,
        /// Whether the beneficiary is enrolled in the cycle's program now.
        enrolled: bool,
        details: EntitlementDetails,
        access: Access,
    },
    /// A state change; the rest of the body restates the entitlement, which never changes.
    Change {
        cycle: CycleFacts,
        /// The beneficiary stream the body names (`None`: no known registrant).
        beneficiary: Option<String>,
        details: EntitlementDetails,
        access: Access,
    },
    /// The entitlement's cycle moved `from` → `to` (in the same commit): the entitlement
    /// follows it as OpenSPP's cycle does (see [`EntitlementState::with_cycle`]), or stays.
    /// It names no beneficiary and discloses nothing about one: it is part of the cycle's
    /// change, which its writer is allowed (`cycle:update`) without anyone's consent.
    FollowCycle {
        /// The cycle's stream.
        cycle: String,
        from: CycleState,
        to: CycleState,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EntitlementEvent {
    EntitlementCreated {
        /// The minted code, in [`CODE_SYSTEM`].
        identifier: Identifier,
        cycle: String,
        program: String,
        beneficiary: String,
        beneficiary_type: TargetType,
        /// Boxed: the largest part of any entitlement event.
        benefit: Box<Benefit>,
        valid_from: NaiveDate,
        valid_until: NaiveDate,
    },
    EntitlementStateChanged {
        from: EntitlementState,
        to: EntitlementState,
        /// Set by the approval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approved_date: Option<NaiveDate>,
        /// The electronic reference number minted on approval (OpenSPP's `ern`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ern: Option<String>,
        /// Set when the entitlement moved with its cycle: the state the cycle moved to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with_cycle: Option<CycleState>,
    },
}

impl DomainEvent for EntitlementEvent {
    fn event_type(&self) -> String {
        match self {
            Self::EntitlementCreated { .. } => "EntitlementCreated",
            Self::EntitlementStateChanged { .. } => "EntitlementStateChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

impl InlineIndex for EntitlementEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        match self {
            Self::EntitlementCreated { identifier, .. } => {
                Some(IndexChange::IdentifierClaimed(identifier))
            }
            Self::EntitlementStateChanged { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entitlement {
    pub identifier: Option<Identifier>,
    pub cycle: String,
    pub program: String,
    pub beneficiary: String,
    pub beneficiary_type: Option<TargetType>,
    pub benefit: Option<Benefit>,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub state: Option<EntitlementState>,
    pub approved_date: Option<NaiveDate>,
    pub ern: Option<String>,
    pub version: u64,
}

const FIXED: &str = "an entitlement's cycle, beneficiary, benefit and validity never change";

/// A code like OpenSPP's: a 21-character fragment of a random UUID.
fn mint_code() -> Identifier {
    Identifier {
        system: CODE_SYSTEM.to_owned(),
        value: uuid::Uuid::new_v4().simple().to_string()[..21].to_owned(),
    }
}

/// A random zero-padded ten-digit number, as OpenSPP's `ern`.
fn mint_ern() -> String {
    format!("{:010}", uuid::Uuid::new_v4().as_u128() % 10_000_000_000)
}

impl Entitlement {
    pub fn kind(&self) -> EntitlementKind {
        self.benefit
            .as_ref()
            .map_or(EntitlementKind::Cash, Benefit::kind)
    }

    /// What kind of registrant the beneficiary is (an individual when not yet recorded).
    pub fn beneficiary_kind(&self) -> TargetType {
        self.beneficiary_type.unwrap_or(TargetType::Individual)
    }

    /// The state of an existing entitlement (a change of one that does not exist is 404).
    fn current(&self) -> Result<EntitlementState, DomainError> {
        self.state
            .ok_or_else(|| DomainError::not_found("Entitlement"))
    }

    /// `Ok` when `from` may become `to` (see [`EntitlementState::next`]); else a 409 naming
    /// the allowed moves.
    fn may_move(from: EntitlementState, to: EntitlementState) -> Result<(), DomainError> {
        transition::check(
            "entitlement",
            "state",
            from,
            to,
            from.next(),
            EntitlementState::as_str,
        )
    }

    fn check_restated(
        &self,
        cycle: &CycleFacts,
        beneficiary: Option<&String>,
        details: &EntitlementDetails,
    ) -> Result<(), DomainError> {
        let fixed = |field: &str| Err(DomainError::invalid(field, FIXED));
        if cycle.stream != self.cycle {
            return fixed("cycle");
        }
        if beneficiary != Some(&self.beneficiary) {
            return fixed("beneficiary");
        }
        if Some(&details.benefit) != self.benefit.as_ref() {
            return fixed(match details.benefit {
                Benefit::Cash { .. } => "initialAmount",
                Benefit::Inkind { .. } => "items",
            });
        }
        if details
            .valid_from
            .is_some_and(|d| Some(d) != self.valid_from)
        {
            return fixed("validPeriod.start");
        }
        if details
            .valid_until
            .is_some_and(|d| Some(d) != self.valid_until)
        {
            return fixed("validPeriod.end");
        }
        Ok(())
    }
}

impl Aggregate for Entitlement {
    const TYPE: &'static str = "Entitlement";
    type Command = EntitlementCommand;
    type Event = EntitlementEvent;
    type Error = DomainError;
    type Services = RegistryServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let today = services.clock.today();
        let event = match command {
            EntitlementCommand::Create {
                cycle,
                beneficiary,
                beneficiary_type,
                enrolled,
                details,
                access,
            } => {
                access.permits(CONSENT_RESOURCE, "beneficiary", today)?;
                if self.state.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                if details.state != EntitlementState::Draft {
                    return Err(DomainError::invalid(
                        "state",
                        "a new entitlement is draft; change its state afterwards",
                    ));
                }
                details.benefit.validate(&cycle.currency)?;
                let valid_from = details.valid_from.unwrap_or(cycle.start_date);
                bounds::date("validPeriod.start", valid_from)?;
                let valid_until = match details.valid_until {
                    Some(until) => until,
                    None => valid_from
                        .checked_add_months(Months::new(12))
                        .ok_or_else(|| DomainError::invalid("validPeriod.start", "too late"))?,
                };
                bounds::date("validPeriod.end", valid_until)?;
                if valid_until < valid_from {
                    return Err(DomainError::invalid(
                        "validPeriod.end",
                        "must not be before validPeriod.start",
                    ));
                }
                if cycle.state != CycleState::Draft {
                    return Err(DomainError::conflict(
                        Some("cycle"),
                        format!(
                            "entitlements are added to a draft cycle; this one is {}",
                            cycle.state.as_str()
                        ),
                    ));
                }
                if !enrolled {
                    return Err(DomainError::invalid(
                        "beneficiary",
                        "is not enrolled in the cycle's program",
                    ));
                }
                EntitlementEvent::EntitlementCreated {
                    identifier: mint_code(),
                    cycle: cycle.stream,
                    program: cycle.program,
                    beneficiary,
                    beneficiary_type,
                    benefit: Box::new(details.benefit),
                    valid_from,
                    valid_until,
                }
            }
            EntitlementCommand::Change {
                cycle,
                beneficiary,
                details,
                access,
            } => {
                access.permits(CONSENT_RESOURCE, "Entitlement", today)?;
                let from = self.current()?;
                self.check_restated(&cycle, beneficiary.as_ref(), &details)?;
                let to = details.state;
                Self::may_move(from, to)?;
                if from == to {
                    return Ok(());
                }
                let cycle_allows = match to {
                    EntitlementState::Approved => cycle.state.approves_entitlements(),
                    EntitlementState::Trans2Fsp | EntitlementState::Rdpd2ben => cycle.state.pays(),
                    _ => true,
                };
                if !cycle_allows {
                    return Err(DomainError::conflict(
                        Some("state"),
                        format!(
                            "an entitlement of a {} cycle cannot become {}",
                            cycle.state.as_str(),
                            to.as_str()
                        ),
                    ));
                }
                let approving = to == EntitlementState::Approved;
                EntitlementEvent::EntitlementStateChanged {
                    from,
                    to,
                    approved_date: approving.then_some(today),
                    ern: approving.then(mint_ern),
                    with_cycle: None,
                }
            }
            EntitlementCommand::FollowCycle {
                cycle,
                from: cycle_from,
                to: cycle_to,
            } => {
                let from = self.current()?;
                if cycle != self.cycle {
                    return Err(DomainError::conflict(
                        Some("cycle"),
                        "the entitlement is not of the cycle that moved",
                    ));
                }
                let Some(to) = from.with_cycle(self.kind(), cycle_from, cycle_to) else {
                    return Ok(());
                };
                Self::may_move(from, to)?;
                EntitlementEvent::EntitlementStateChanged {
                    from,
                    to,
                    approved_date: None,
                    ern: None,
                    with_cycle: Some(cycle_to),
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            EntitlementEvent::EntitlementCreated {
                identifier,
                cycle,
                program,
                beneficiary,
                beneficiary_type,
                benefit,
                valid_from,
                valid_until,
            } => {
                self.identifier = Some(identifier);
                self.cycle = cycle;
                self.program = program;
                self.beneficiary = beneficiary;
                self.beneficiary_type = Some(beneficiary_type);
                self.benefit = Some(*benefit);
                self.valid_from = Some(valid_from);
                self.valid_until = Some(valid_until);
                self.state = Some(EntitlementState::Draft);
            }
            EntitlementEvent::EntitlementStateChanged {
                to,
                approved_date,
                ern,
                ..
            } => {
                self.state = Some(to);
                if approved_date.is_some() {
                    self.approved_date = approved_date;
                }
                // OpenSPP keeps an ern only while approved or later in the payment flow.
                if ern.is_some() || matches!(to, EntitlementState::Draft) {
                    self.ern = ern;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{date, full_access, ngo, ngo_consent, services, today};

    fn cycle(state: CycleState) -> CycleFacts {
        CycleFacts {
            stream: "cycle-1".into(),
            program: "program-1".into(),
            state,
            start_date: date(2024, 1, 1),
            currency: "PHP".into(),
        }
    }

    fn cash(pesos: i64) -> Benefit {
        Benefit::Cash {
            amount: Money {
                cents: pesos * 100,
                currency: "PHP".into(),
            },
        }
    }

    fn details(benefit: Benefit, state: EntitlementState) -> EntitlementDetails {
        EntitlementDetails {
            benefit,
            valid_from: None,
            valid_until: None,
            state,
        }
    }

    fn create(enrolled: bool, benefit: Benefit, access: Access) -> EntitlementCommand {
        EntitlementCommand::Create {
            cycle: cycle(CycleState::Draft),
            beneficiary: "person-1".into(),
            beneficiary_type: TargetType::Individual,
            enrolled,
            details: details(benefit, EntitlementState::Draft),
            access,
        }
    }

    fn created() -> EntitlementEvent {
        created_with(cash(3000))
    }

    fn created_with(benefit: Benefit) -> EntitlementEvent {
        EntitlementEvent::EntitlementCreated {
            identifier: Identifier {
                system: CODE_SYSTEM.into(),
                value: "code".into(),
            },
            cycle: "cycle-1".into(),
            program: "program-1".into(),
            beneficiary: "person-1".into(),
            beneficiary_type: TargetType::Individual,
            benefit: Box::new(benefit),
            valid_from: date(2024, 1, 1),
            valid_until: date(2025, 1, 1),
        }
    }

    fn moved(from: EntitlementState, to: EntitlementState) -> EntitlementEvent {
        EntitlementEvent::EntitlementStateChanged {
            from,
            to,
            approved_date: None,
            ern: None,
            with_cycle: None,
        }
    }

    fn change(cycle_state: CycleState, to: EntitlementState) -> EntitlementCommand {
        EntitlementCommand::Change {
            cycle: cycle(cycle_state),
            beneficiary: Some("person-1".into()),
            details: details(cash(3000), to),
            access: full_access(),
        }
    }

    async fn run(
        given: Vec<EntitlementEvent>,
        command: EntitlementCommand,
    ) -> Result<Vec<EntitlementEvent>, DomainError> {
        TestFramework::<Entitlement>::with(services())
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
    }

    #[test]
    fn amounts_are_exact_hundredths() {
        assert_eq!(Money::cents_of(3000.0), Some(300_000));
        assert_eq!(Money::cents_of(0.1), Some(10));
        assert_eq!(Money::cents_of(12.345), None);
        assert_eq!(Money::cents_of(1e300), None);
    }

    #[tokio::test]
    async fn a_cash_entitlement_for_an_enrolled_member_is_draft_and_valid_a_year() {
        let events = run(vec![], create(true, cash(3000), full_access()))
            .await
            .unwrap();
        let [EntitlementEvent::EntitlementCreated {
            identifier,
            valid_from,
            valid_until,
            benefit,
            ..
        }] = events.as_slice()
        else {
            panic!("{events:?}");
        };
        assert_eq!(identifier.system, CODE_SYSTEM);
        assert_eq!(identifier.value.len(), 21);
        assert_eq!(
            (*valid_from, *valid_until),
            (date(2024, 1, 1), date(2025, 1, 1))
        );
        assert_eq!(benefit.as_ref(), &cash(3000));
    }

    #[tokio::test]
    async fn only_an_enrolled_member_consented_for_in_the_programs_currency() {
        assert_eq!(
            run(vec![], create(false, cash(3000), full_access())).await,
            Err(DomainError::invalid(
                "beneficiary",
                "is not enrolled in the cycle's program"
            ))
        );
        let unconsented = Access {
            actor: ngo(),
            consents: vec![],
        };
        assert_eq!(
            run(vec![], create(true, cash(3000), unconsented)).await,
            Err(DomainError::not_found("beneficiary"))
        );
        let consented = Access {
            actor: ngo(),
            consents: vec![ngo_consent("person-1", CONSENT_RESOURCE, None)],
        };
        assert!(run(vec![], create(true, cash(3000), consented))
            .await
            .is_ok());
        let dollars = Benefit::Cash {
            amount: Money {
                cents: 100,
                currency: "USD".into(),
            },
        };
        assert_eq!(
            run(vec![], create(true, dollars, full_access())).await,
            Err(DomainError::invalid(
                "initialAmount.currency",
                "must be the program's currency, PHP"
            ))
        );
        assert_eq!(
            run(vec![], create(true, cash(0), full_access())).await,
            Err(DomainError::invalid(
                "initialAmount.value",
                "must be more than zero"
            ))
        );
    }

    #[tokio::test]
    async fn entitlements_are_added_to_draft_cycles_only() {
        let mut command = create(true, cash(10), full_access());
        if let EntitlementCommand::Create { cycle: c, .. } = &mut command {
            *c = cycle(CycleState::Approved);
        }
        assert_eq!(
            run(vec![], command).await,
            Err(DomainError::conflict(
                Some("cycle"),
                "entitlements are added to a draft cycle; this one is approved"
            ))
        );
    }

    #[tokio::test]
    async fn in_kind_entitlements_need_a_product_and_a_positive_quantity() {
        let goods = |quantity: f64| Benefit::Inkind {
            product: "RICE-25KG".into(),
            quantity,
            unit: "Unit".into(),
            unit_price: None,
            service_point: Some("Manila Center".into()),
        };
        assert!(run(vec![], create(true, goods(2.0), full_access()))
            .await
            .is_ok());
        assert_eq!(
            run(vec![], create(true, goods(0.0), full_access())).await,
            Err(DomainError::invalid(
                "items[0].quantity.value",
                "must be more than zero"
            ))
        );
    }

    #[tokio::test]
    async fn approval_mints_an_ern_and_needs_the_cycle_under_approval() {
        let pending = vec![
            created(),
            moved(EntitlementState::Draft, EntitlementState::PendingValidation),
        ];
        assert_eq!(
            run(
                pending.clone(),
                change(CycleState::Draft, EntitlementState::Approved)
            )
            .await,
            Err(DomainError::conflict(
                Some("state"),
                "an entitlement of a draft cycle cannot become approved"
            ))
        );
        let events = run(
            pending,
            change(CycleState::ToApprove, EntitlementState::Approved),
        )
        .await
        .unwrap();
        let [EntitlementEvent::EntitlementStateChanged {
            approved_date: Some(approved),
            ern: Some(ern),
            ..
        }] = events.as_slice()
        else {
            panic!("{events:?}");
        };
        assert_eq!(*approved, today());
        assert_eq!(ern.len(), 10);
        assert!(ern.chars().all(|c| c.is_ascii_digit()));
    }

    #[tokio::test]
    async fn every_transition_is_allowed_or_refused_as_the_table_says() {
        for &from in EntitlementState::ALL {
            for &to in EntitlementState::ALL {
                let mut history = vec![created()];
                if from != EntitlementState::Draft {
                    history.push(moved(EntitlementState::Draft, from));
                }
                let outcome = run(history, change(CycleState::Approved, to)).await;
                if from == to {
                    assert_eq!(outcome, Ok(vec![]), "{from:?} → {to:?} is no change");
                } else if from.next().contains(&to) {
                    assert!(outcome.is_ok(), "{from:?} → {to:?}: {outcome:?}");
                } else {
                    let Err(DomainError::Conflict { field, message }) = outcome else {
                        panic!("{from:?} → {to:?} must be refused: {outcome:?}");
                    };
                    assert_eq!(field.as_deref(), Some("state"));
                    assert!(
                        message.starts_with(&format!(
                            "a {} entitlement cannot become {}; allowed: ",
                            from.as_str(),
                            to.as_str()
                        )),
                        "{message}"
                    );
                }
            }
        }
    }

    fn goods() -> Benefit {
        Benefit::Inkind {
            product: "RICE-25KG".into(),
            quantity: 2.0,
            unit: "Sack".into(),
            unit_price: None,
            service_point: None,
        }
    }

    fn follow(from: CycleState, to: CycleState) -> EntitlementCommand {
        EntitlementCommand::FollowCycle {
            cycle: "cycle-1".into(),
            from,
            to,
        }
    }

    fn followed(
        from: EntitlementState,
        to: EntitlementState,
        cycle: CycleState,
    ) -> EntitlementEvent {
        EntitlementEvent::EntitlementStateChanged {
            from,
            to,
            approved_date: None,
            ern: None,
            with_cycle: Some(cycle),
        }
    }

    /// The history of an entitlement of `benefit` now in `state`.
    fn in_state(benefit: Benefit, state: EntitlementState) -> Vec<EntitlementEvent> {
        let mut history = vec![created_with(benefit)];
        if state != EntitlementState::Draft {
            history.push(moved(EntitlementState::Draft, state));
        }
        history
    }

    /// OpenSPP's cascades: a submitted cycle's draft entitlements (of both kinds) await
    /// approval; a rejected cycle's pending cash entitlements are cancelled; a cycle reset to
    /// draft resets its pending and cancelled cash entitlements.
    #[tokio::test]
    async fn an_entitlement_follows_its_cycle_as_openspp_cascades() {
        use CycleState as C;
        use EntitlementState as E;
        let cases = [
            (C::Draft, C::ToApprove, E::Draft, E::PendingValidation),
            (
                C::ToApprove,
                C::Cancelled,
                E::PendingValidation,
                E::Cancelled,
            ),
            (C::ToApprove, C::Draft, E::PendingValidation, E::Draft),
            (C::Cancelled, C::Draft, E::PendingValidation, E::Draft),
            (C::Cancelled, C::Draft, E::Cancelled, E::Draft),
        ];
        for (from, to, state, follows) in cases {
            assert_eq!(
                run(in_state(cash(3000), state), follow(from, to)).await,
                Ok(vec![followed(state, follows, to)]),
                "cash {state:?} in a cycle {from:?} → {to:?}"
            );
        }
        // In kind: submitted with the cycle, then left where it is (the reject and the reset
        // touch the cycle's cash entitlements only).
        assert_eq!(
            run(in_state(goods(), E::Draft), follow(C::Draft, C::ToApprove)).await,
            Ok(vec![followed(E::Draft, E::PendingValidation, C::ToApprove)])
        );
        for (from, to, state) in [
            (C::ToApprove, C::Cancelled, E::PendingValidation),
            (C::ToApprove, C::Draft, E::PendingValidation),
            (C::Cancelled, C::Draft, E::PendingValidation),
        ] {
            assert_eq!(
                run(in_state(goods(), state), follow(from, to)).await,
                Ok(vec![]),
                "goods {state:?} in a cycle {from:?} → {to:?}"
            );
        }
    }

    /// Every other (cycle move, entitlement state) leaves the entitlement where it is: an
    /// approved, paid or rejected entitlement never follows, nor does anything follow an
    /// approval, a distribution, an end or an approved cycle's cancellation.
    #[tokio::test]
    async fn anything_else_stays_and_the_cascade_is_the_cycles_own() {
        for &from in CycleState::ALL {
            for &to in from.next() {
                let states = EntitlementState::moved_by_cycle(from, to);
                for &state in EntitlementState::ALL {
                    // A history reaching `state` through allowed moves.
                    let mut history = vec![created()];
                    let path: &[EntitlementState] = match state {
                        EntitlementState::Draft => &[],
                        EntitlementState::Trans2Fsp => &[
                            EntitlementState::PendingValidation,
                            EntitlementState::Approved,
                            EntitlementState::Trans2Fsp,
                        ],
                        EntitlementState::Rdpd2ben
                        | EntitlementState::Rejected1
                        | EntitlementState::Rejected2 => &[
                            EntitlementState::PendingValidation,
                            EntitlementState::Approved,
                            EntitlementState::Trans2Fsp,
                        ],
                        EntitlementState::Approved | EntitlementState::Expired => &[
                            EntitlementState::PendingValidation,
                            EntitlementState::Approved,
                        ],
                        _ => &[EntitlementState::PendingValidation],
                    };
                    let mut at = EntitlementState::Draft;
                    for &next in path.iter().chain(std::iter::once(&state)) {
                        if next != at {
                            history.push(moved(at, next));
                            at = next;
                        }
                    }
                    let outcome = run(history, follow(from, to)).await.unwrap();
                    match state.with_cycle(EntitlementKind::Cash, from, to) {
                        Some(follows) => {
                            assert!(states.contains(&state));
                            assert!(state.next().contains(&follows), "{state:?} → {follows:?}");
                            assert_eq!(outcome, vec![followed(state, follows, to)]);
                        }
                        None => assert_eq!(outcome, vec![], "{state:?}, cycle {from:?} → {to:?}"),
                    }
                }
            }
        }
        // Another cycle's move is refused: the cascade is its own cycle's.
        let elsewhere = EntitlementCommand::FollowCycle {
            cycle: "cycle-2".into(),
            from: CycleState::Draft,
            to: CycleState::ToApprove,
        };
        assert_eq!(
            run(vec![created()], elsewhere).await,
            Err(DomainError::conflict(
                Some("cycle"),
                "the entitlement is not of the cycle that moved"
            ))
        );
    }

    #[tokio::test]
    async fn a_change_restates_the_entitlement() {
        let command = EntitlementCommand::Change {
            cycle: cycle(CycleState::Draft),
            beneficiary: Some("person-1".into()),
            details: details(cash(2000), EntitlementState::PendingValidation),
            access: full_access(),
        };
        assert_eq!(
            run(vec![created()], command).await,
            Err(DomainError::invalid("initialAmount", FIXED))
        );
        let command = EntitlementCommand::Change {
            cycle: cycle(CycleState::Draft),
            beneficiary: Some("person-2".into()),
            details: details(cash(3000), EntitlementState::PendingValidation),
            access: full_access(),
        };
        assert_eq!(
            run(vec![created()], command).await,
            Err(DomainError::invalid("beneficiary", FIXED))
        );
    }
}
