/* Row buttons (acknowledge, note, silence, cancel a silence) are redrawn by every refresh.
   A press is recorded here, at the click, into the dcc.Store named by the button's
   data-press-store: {id: the button's id, at: ms}. The page's callbacks read that store,
   so a redraw between the click and Dash's handling of it cannot lose the press. */
document.addEventListener(
    "click",
    (event) => {
        const button = event.target.closest("button[data-press-store]");
        const clientside = window.dash_clientside;
        if (!button || button.disabled || !clientside || !clientside.set_props) {
            return;
        }
        let id;
        try {
            id = JSON.parse(button.id);
        } catch (error) {
            return;  // not a pattern-matched id
        }
        clientside.set_props(button.dataset.pressStore, {data: {id: id, at: Date.now()}});
    },
    true,
);
