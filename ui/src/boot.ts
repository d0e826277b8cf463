// The window's entry. WebKit draws nothing until the page's load event when a page has
// little text, and a module script holds that event back until it has been fetched,
// compiled and run. So the page loads with only the stylesheet and the static first frame
// of index.html, and the app starts once that frame is on screen: the second animation
// frame comes after the first was presented, and the task queued there runs after its
// rendering. Mounting the app earlier (with a large store, fetching and laying out the
// tree) competed with that first frame for the CPU and held it back by 100–250 ms.
import "./app.css";

const afterFirstFrame = (run: () => void) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(run)));
const start = () => afterFirstFrame(() => import("./main"));
if (document.readyState === "complete") start();
else addEventListener("load", start, { once: true });
