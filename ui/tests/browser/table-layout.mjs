// What a person would find cut in the Connections table, measured in the page. Shared by
// the Chromium flows and the real window's WebDriver test; runs in the page, so it must
// stay self-contained.
export function tableLayout() {
  const scroller = document.querySelector(".table-scroll");
  const box = scroller.getBoundingClientRect();
  const cut = (el) => el.scrollWidth > el.clientWidth;
  const outside = (el) => {
    const r = el.getBoundingClientRect();
    return r.left < box.left || r.right > box.right || r.width === 0;
  };
  return {
    viewport: `${innerWidth}×${innerHeight}`,
    scrolls: scroller.scrollWidth > scroller.clientWidth,
    cutHeaders: [...document.querySelectorAll('[role="columnheader"]')].filter(cut).map((el) => el.textContent.trim()),
    cutControls: [...document.querySelectorAll(".table-body button")]
      .filter((el) => cut(el) || outside(el))
      .map((el) => el.getAttribute("aria-label") ?? el.textContent.trim()),
  };
}
