//! Names that look alike are not taken for two things: a template name with a look-alike
//! letter, an invisible character or other spacing is refused (422) or found taken (409).

use keygate::App;
use keygate::template::TemplateInput;
use serde_json::json;

use crate::story;

pub async fn look_alike_template_names_are_refused_or_taken(app: &App) {
    let s = story::pending_request(app).await; // holds "Forecast API"
    let create = |name: &str| {
        let input: TemplateInput = serde_json::from_value(json!({"name": name, "role": "reader"})).unwrap();
        app.create_template(&s.owner, &s.project, input)
    };
    for (name, status) in [
        ("Forecast \u{410}PI", 422),   // Cyrillic А
        ("Forecast\u{200B} API", 422), // zero-width space
        ("\u{202E}IPA tsaceroF", 422), // right-to-left override
        ("Forecast\u{A0}API", 409),    // no-break space
        ("Forecast  API", 409),        // double space
        ("  forecast api ", 409),      // case and surrounding space
        ("\u{FF26}orecast API", 409),  // full-width F
    ] {
        let err = create(name).await.expect_err(name);
        assert_eq!(err.status().as_u16(), status, "{name:?}: {err}");
    }
    // A name stored NFC: 'é' typed as e + combining accent is the same template as 'é'.
    let made = create("Caf\u{65}\u{301} API").await.unwrap();
    assert_eq!(made.name, "Caf\u{e9} API");
    assert_eq!(create("caf\u{e9} api").await.unwrap_err().status().as_u16(), 409);
    // Another script, word by word, is fine.
    assert!(create("Прогноз API").await.is_ok());
    // A rename to a look-alike of another template is taken too.
    let patch: keygate::template::TemplatePatch = serde_json::from_value(json!({"name": "FORECAST\u{A0}API"})).unwrap();
    let err = app.edit_template(&s.owner, &s.project, &made.id, patch, Default::default()).await.unwrap_err();
    assert_eq!(err.status().as_u16(), 409, "{err}");
}
