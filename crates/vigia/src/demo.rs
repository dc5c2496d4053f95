//! Demo data for newcomers (`vigia serve --demo`): a campus with departments, categories,
//! zones and one account per role. Only applied to an empty database.

use vigia_domain::catalog::{CategorySpec, DepartmentSpec, ZoneSpec};
use vigia_domain::ids::UserId;
use vigia_domain::incidents::AssignmentStrategy;
use vigia_domain::users::Role;
use vigia_store::{ChangeAuthor, Db, catalog, users};

/// The demo accounts: (e-mail, password, role).
pub const ACCOUNTS: [(&str, &str, Role); 3] = [
    ("admin@demo.vigia.local", "faro-norte-2026", Role::Admin),
    ("staff@demo.vigia.local", "faro-sur-2026", Role::Staff),
    (
        "reporter@demo.vigia.local",
        "faro-este-2026",
        Role::Reporter,
    ),
];

/// Seeds the demo campus. Returns false (and does nothing) if the database already has users.
pub async fn seed(db: &Db) -> anyhow::Result<bool> {
    let (count, _) = users::counts(db).await?;
    if count > 0 {
        return Ok(false);
    }
    let actor = ChangeAuthor::system();
    let mut departments = Vec::new();
    for (name, email) in [
        ("Mantenimiento", "mantenimiento@demo.vigia.local"),
        ("Seguridad", "seguridad@demo.vigia.local"),
        ("Tecnologías de la Información", "ti@demo.vigia.local"),
        ("Limpieza", "limpieza@demo.vigia.local"),
    ] {
        let spec = DepartmentSpec::parse(name, &[email.to_owned()]).map_err(fields)?;
        departments.push(
            catalog::create_department(db, &spec, AssignmentStrategy::RoundRobin, &actor)
                .await?
                .id,
        );
    }
    for (es, en, dept, urgency) in [
        ("Fuga de agua", "Water leak", 0, "high"),
        ("Falla eléctrica", "Power failure", 0, "high"),
        ("Robo o pérdida", "Theft or loss", 1, "medium"),
        ("Emergencia médica", "Medical emergency", 1, "emergency"),
        ("Red o Wi-Fi", "Network or Wi-Fi", 2, "medium"),
        (
            "Proyector o equipo de aula",
            "Classroom equipment",
            2,
            "low",
        ),
        ("Limpieza", "Cleaning", 3, "low"),
    ] {
        let spec = CategorySpec::parse(es, Some(en), Some(departments[dept].0), Some(urgency))
            .map_err(fields)?;
        catalog::create_category(db, &spec, &actor).await?;
    }
    let campus = [
        (-12.1345, -77.0230),
        (-12.1345, -77.0205),
        (-12.1370, -77.0205),
        (-12.1370, -77.0230),
    ];
    let zones: [DemoZone; 4] = [
        ("Campus", None, None, Some(&campus)),
        ("Pabellón A", Some((-12.1352, -77.0222)), Some(40.0), None),
        ("Biblioteca", Some((-12.1360, -77.0212)), Some(30.0), None),
        ("Cafetería", Some((-12.1365, -77.0225)), Some(25.0), None),
    ];
    for (name, center, radius, polygon) in zones {
        let spec = ZoneSpec::parse(name, None, center, radius, polygon).map_err(fields)?;
        catalog::create_zone(db, &spec, &actor).await?;
    }
    let mut staff = None;
    for (email, password, role) in ACCOUNTS {
        let name = match role {
            Role::Admin => "Ana Admin",
            Role::Staff => "Sergio Staff",
            Role::Reporter => "Rosa Reportera",
        };
        let user = crate::create_user(db, email, name, password, role).await?;
        if role == Role::Staff {
            staff = Some(user.id);
        }
    }
    if let Some(staff) = staff {
        let patch = users::UserPatch {
            departments: Some(vec![departments[0], departments[2]]),
            ..Default::default()
        };
        users::update(db, UserId(staff.0), &patch, &actor).await?;
    }
    Ok(true)
}

/// A demo zone: name, circle centre, circle radius, polygon.
type DemoZone<'a> = (
    &'a str,
    Option<(f64, f64)>,
    Option<f64>,
    Option<&'a [(f64, f64)]>,
);

fn fields(errors: Vec<vigia_domain::FieldError>) -> anyhow::Error {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("invalid demo data: {}", list.join("; "))
}
