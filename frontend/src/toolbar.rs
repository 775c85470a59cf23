//! The pen tray at the bottom: tools, ink and size, undo and redo; and the bar of actions on
//! the selection. On a narrow screen the style controls, then the shape tools, fold into
//! panels opened from the tray (the same buttons: the stylesheet decides), so that everything
//! stays on screen without scrolling.

use kokuban_client::LookPart;
use kokuban_client::panels::Panel;
use kokuban_client::prefs::{PALETTE, Size, hex};
use kokuban_client::tools::ToolKind;
use kokuban_protocol::{Align, Dash, Fill, Opacity};
use leptos::prelude::*;

use crate::room::{EngineRef, icon};

/// The tools folded into the shapes panel on a phone.
const SHAPES: [ToolKind; 4] = [
    ToolKind::Line,
    ToolKind::Arrow,
    ToolKind::Rect,
    ToolKind::Ellipse,
];

/// The tools of a view-only member: what changes nothing on the board.
#[component]
pub fn ViewerBar(engine: EngineRef) -> impl IntoView {
    let ui = engine.with_value(|e| e.ui());
    let tool = move |k: ToolKind| {
        let title = format!("{} — {}", k.label(), k.shortcut().to_ascii_uppercase());
        view! {
            <button
                class="btn tool"
                class:active=move || ui.with(|u| u.tool == k)
                data-tool=k.name()
                title=title
                aria-label=k.label()
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.set_tool(k)))
            >
                {icon(k.name())}
            </button>
        }
    };
    view! {
        <nav class="bar toolbar" aria-label="Tools">
            <div class="group tools">{[ToolKind::Hand, ToolKind::Laser].map(tool)}</div>
        </nav>
    }
}

/// The toolbar of an editor.
#[component]
pub fn Toolbar(engine: EngineRef) -> impl IntoView {
    let (ui, panels) = engine.with_value(|e| (e.ui(), e.panels()));
    let tool = move |k: ToolKind| {
        let title = format!("{} — {}", k.label(), k.shortcut().to_ascii_uppercase());
        view! {
            <button
                class="btn tool"
                class:active=move || ui.with(|u| u.tool == k)
                data-tool=k.name()
                title=title
                aria-label=k.label()
                on:click=move |_| {
                    engine.with_value(|e| e.act(|ed| ed.set_tool(k)));
                    // A shape picked from its panel is a choice made: the panel closes.
                    if SHAPES.contains(&k) {
                        panels.maybe_update(|p| p.close());
                    }
                }
            >
                {icon(k.name())}
            </button>
        }
    };
    let main = [
        ToolKind::Select,
        ToolKind::Hand,
        ToolKind::Pen,
        ToolKind::Highlighter,
        ToolKind::Eraser,
    ]
    .map(tool);
    let shapes = SHAPES.map(tool);
    let text = tool(ToolKind::Text);
    let laser = tool(ToolKind::Laser);
    let shape = move || ui.with(|u| SHAPES.contains(&u.tool).then_some(u.tool));
    let shapes_open = move || panels.with(|p| p.is_open(Panel::Shapes));
    let style_open = move || panels.with(|p| p.is_open(Panel::Style));
    let look_open = move || panels.with(|p| p.is_open(Panel::Look));
    view! {
        <nav class="bar toolbar" aria-label="Tools">
            <div class="group tools">
                {main}
                <div class="collapsible shapes" data-panel="shapes">
                    <button
                        class="btn toggle"
                        class:active=move || shape().is_some()
                        title="Shapes: line, arrow, rectangle, ellipse"
                        aria-label="Shapes"
                        aria-expanded=move || shapes_open().to_string()
                        on:click=move |_| panels.update(|p| p.toggle(Panel::Shapes))
                    >
                        {move || icon(shape().map_or("shapes", ToolKind::name))}
                    </button>
                    <div class="tray" class:open=shapes_open role="group" aria-label="Shapes">
                        {shapes}
                    </div>
                </div>
                {text}
                {laser}
            </div>
            <div class="sep"></div>
            <div class="collapsible style" data-panel="style">
                <button
                    class="btn toggle"
                    title="Ink colour and size"
                    aria-label="Ink colour and size"
                    aria-expanded=move || style_open().to_string()
                    on:click=move |_| panels.update(|p| p.toggle(Panel::Style))
                >
                    <span
                        class="ink-dot"
                        style=move || format!("--swatch:{}", hex(ui.with(|u| u.theme.display(u.ink))))
                    ></span>
                </button>
                <div class="tray" class:open=style_open role="group" aria-label="Ink colour and size">
                    <Style engine=engine/>
                </div>
            </div>
            <div class="collapsible look" data-panel="look">
                <button
                    class="btn toggle"
                    title="Fill, line and opacity"
                    aria-label="Fill, line and opacity"
                    aria-expanded=move || look_open().to_string()
                    on:click=move |_| panels.update(|p| p.toggle(Panel::Look))
                >
                    {icon("look")}
                </button>
                <div class="tray" class:open=look_open role="group" aria-label="Fill, line and opacity">
                    <LookPanel engine=engine/>
                </div>
            </div>
            <div class="sep"></div>
            <div class="group history">
                <button
                    class="btn"
                    title="Undo — Ctrl+Z"
                    aria-label="Undo"
                    disabled=move || !ui.with(|u| u.undo.0)
                    on:click=move |_| engine.with_value(|e| e.act(|ed| ed.undo()))
                >
                    {icon("undo")}
                </button>
                <button
                    class="btn"
                    title="Redo — Ctrl+Shift+Z"
                    aria-label="Redo"
                    disabled=move || !ui.with(|u| u.undo.1)
                    on:click=move |_| engine.with_value(|e| e.act(|ed| ed.redo()))
                >
                    {icon("redo")}
                </button>
            </div>
        </nav>
    }
}

/// The ink colours and sizes.
#[component]
fn Style(engine: EngineRef) -> impl IntoView {
    let ui = engine.with_value(|e| e.ui());
    let swatches = PALETTE.map(|(name, color)| {
        view! {
            <button
                class="swatch"
                class:active=move || ui.with(|u| u.ink == color)
                data-color=name
                title=name
                aria-label=format!("Ink colour: {name}")
                style=format!("--swatch:{}", hex(color))
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.set_ink(color)))
            ></button>
        }
    });
    let sizes = Size::ALL.map(|size| {
        let dot = match size {
            Size::S => 4,
            Size::M => 7,
            Size::L => 11,
            Size::Xl => 15,
        };
        let name = size.name().to_ascii_uppercase();
        view! {
            <button
                class="btn size"
                class:active=move || ui.with(|u| u.size == size)
                title=format!("Size {name}")
                aria-label=format!("Stroke size {name}")
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.set_size(size)))
            >
                <span class="size-dot" style=format!("width:{dot}px;height:{dot}px")></span>
            </button>
        }
    });
    view! {
        <div class="group swatches">{swatches}</div>
        <div class="sep"></div>
        <div class="group sizes">{sizes}</div>
    }
}

/// Fill, line style, opacity and text alignment: of the selection, and of new items.
#[component]
fn LookPanel(engine: EngineRef) -> impl IntoView {
    let fills = [
        (Fill::None, "None"),
        (Fill::Tint, "Tint"),
        (Fill::Solid, "Solid"),
        (Fill::Hachure, "Hachure"),
    ]
    .map(|(f, l)| (LookPart::Fill(f), l));
    let dashes = [
        (Dash::Solid, "Solid"),
        (Dash::Dashed, "Dashed"),
        (Dash::Dotted, "Dotted"),
    ]
    .map(|(d, l)| (LookPart::Dash(d), l));
    let opacities = [(100u8, "100%"), (75, "75%"), (50, "50%"), (25, "25%")]
        .map(|(o, l)| (LookPart::Opacity(Opacity::new(o).unwrap_or_default()), l));
    let aligns = [
        (Align::Left, "Left"),
        (Align::Center, "Centre"),
        (Align::Right, "Right"),
    ]
    .map(|(a, l)| (LookPart::Align(a), l));
    view! {
        {look_row(engine, "Fill", "Fill", fills, |l| format!("Fill: {}", l.to_lowercase()))}
        {look_row(engine, "Line", "Line", dashes, |l| format!("Line: {}", l.to_lowercase()))}
        {look_row(engine, "Opacity", "Opacity", opacities, |l| format!("Opacity {l}"))}
        {look_row(
            engine,
            "Text alignment",
            "Text",
            aligns,
            |l| format!("Align text: {}", l.to_lowercase()),
        )}
    }
}

/// One row of the look panel under `heading` (`group` names it for screen readers): a button
/// for each of `choices`, a part and its label, named by `name` from the label and lit while
/// the shown look has that part.
fn look_row<const N: usize>(
    engine: EngineRef,
    group: &'static str,
    heading: &'static str,
    choices: [(LookPart, &'static str); N],
    name: impl Fn(&str) -> String,
) -> impl IntoView {
    let ui = engine.with_value(|e| e.ui());
    // An array, not a Vec: a Vec would add a placeholder node to the row.
    let buttons = choices.map(|(part, label)| {
        let name = name(label);
        view! {
            <button
                class="btn choice"
                class:active=move || ui.with(|u| part.on(u.look) == u.look)
                title=name.clone()
                aria-label=name
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.set_look(part)))
            >
                {label}
            </button>
        }
    });
    view! {
        <div class="look-row" role="group" aria-label=group>
            <span class="look-label">{heading}</span>
            {buttons}
        </div>
    }
}

/// Actions on the selection, for those without a keyboard (and as a reminder of the keys).
#[component]
pub fn SelectionBar(engine: EngineRef) -> impl IntoView {
    let ui = engine.with_value(|e| e.ui());
    view! {
        <Show when=move || ui.with(|u| u.selection && u.can_edit)>
            <div class="bar selection-bar" role="toolbar" aria-label="Selection">
                <button
                    class="btn"
                    title="Duplicate the selection — Ctrl+D"
                    aria-label="Duplicate the selection"
                    on:click=move |_| engine.with_value(|e| e.act(|ed| ed.duplicate()))
                >
                    {icon("duplicate")}
                </button>
                <button
                    class="btn"
                    title="Delete the selection — Del"
                    aria-label="Delete the selection"
                    on:click=move |_| engine.with_value(|e| e.act(|ed| ed.delete_selection()))
                >
                    {icon("trash")}
                </button>
            </div>
        </Show>
    }
}
