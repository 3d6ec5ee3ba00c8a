//! A test-only component that speaks a `printer-driver` contract from the
//! future (0.2.0), to check that a node refuses it by name and version.

wit_bindgen::generate!({
    inline: "
        package outpost:plugins@0.2.0;

        interface lifecycle {
            record plugin-info {
                version: string,
                description: string,
                support: string,
            }
            info: func() -> plugin-info;
        }

        interface printer {
            render-label: func(zpl: string) -> list<u8>;
        }

        world printer-driver {
            export lifecycle;
            export printer;
        }
    ",
    world: "printer-driver",
});

struct FromTheFuture;

impl exports::outpost::plugins::lifecycle::Guest for FromTheFuture {
    fn info() -> exports::outpost::plugins::lifecycle::PluginInfo {
        exports::outpost::plugins::lifecycle::PluginInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Built for a future contract (tests only)".into(),
            support: "tests".into(),
        }
    }
}

impl exports::outpost::plugins::printer::Guest for FromTheFuture {
    fn render_label(zpl: String) -> Vec<u8> {
        zpl.into_bytes()
    }
}

export!(FromTheFuture);
