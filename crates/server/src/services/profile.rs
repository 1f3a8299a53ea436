//! The user's profile.

use donkies_domain::{DateOfBirth, Phone, PostalCode, Ssn, UsState};
use donkies_store::users::{ProfileUpdate, User};
use donkies_store::{now, users};

use super::{Change, ServiceError, ServiceResult, identity::IdentityService};

pub const PROFILE_COMPLETE: &str = "Profile is completed and can not be changed.";

/// Profile fields as parsed from a request; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct Profile {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<Phone>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub state: Option<UsState>,
    pub postal_code: Option<PostalCode>,
    pub date_of_birth: Option<DateOfBirth>,
    pub ssn: Option<Ssn>,
}

impl IdentityService {
    /// Fill in the profile; once every field is present it is complete and frozen. The SSN is
    /// stored encrypted, with its last four digits for display.
    pub async fn update_profile(&self, user: &User, profile: Profile) -> ServiceResult<User> {
        if user.is_profile_completed {
            return Err(ServiceError::invalid(PROFILE_COMPLETE));
        }
        let update = ProfileUpdate {
            first_name: profile.first_name,
            last_name: profile.last_name,
            phone: profile.phone.map(|p| p.as_str().to_owned()),
            address1: profile.address1,
            address2: profile.address2,
            city: profile.city,
            state: profile.state.map(|s| s.as_str().to_owned()),
            postal_code: profile.postal_code.map(|p| p.as_str().to_owned()),
            date_of_birth: profile.date_of_birth.map(|d| d.date()),
            ssn_encrypted: profile.ssn.as_ref().map(|s| self.sealer.seal(s.digits())),
            ssn_last4: profile.ssn.as_ref().map(|s| s.last4().to_owned()),
        };
        let mut work = self.store.begin().await?;
        let updated = users::update_profile(&mut work, user.id, &update, now())
            .await?
            .ok_or_else(|| ServiceError::invalid(PROFILE_COMPLETE))?;
        // A complete profile makes the user a personal (verified) customer at Dwolla: the
        // customer row and the job that creates it commit with the profile that freezes.
        self.payments.ensure_personal_customer(&mut work, &updated).await?;
        work.changed(Change::User(user.id));
        work.commit().await?;
        Ok(updated)
    }
}
