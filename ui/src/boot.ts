// The window's entry. WebKit draws nothing until the page's load event when a page has
// little text, and a module script holds that event back until it has been fetched,
// compiled and run. So the page loads with only the stylesheet and the static first frame
// of index.html, which WebKit draws at once, and the app follows right after.
import "./app.css";

const start = () => import("./main");
if (document.readyState === "complete") start();
else addEventListener("load", start, { once: true });
