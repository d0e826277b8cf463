import { mount } from "svelte";
import App from "./App.svelte";

const target = document.getElementById("app")!;
// index.html drew a static first frame there while the app loaded.
target.replaceChildren();
export default mount(App, { target });
