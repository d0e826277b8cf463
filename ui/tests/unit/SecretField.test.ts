import { describe, expect, it } from "vitest";
import { render, screen } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import SecretField from "../../src/lib/components/SecretField.svelte";

const assets = [{ id: "1", name: "Twilio token", folder: "Shared", used_by: 0, rotatable: false, store: null, link: null, destinations: [], created_at: "", updated_at: "" }];

describe("SecretField", () => {
  it("is hidden by default and Show/Hide toggles it with aria-pressed", async () => {
    const user = userEvent.setup();
    render(SecretField, { id: "token", label: "Auth Token", value: "s3cret", assets: null });
    const input = screen.getByLabelText("Auth Token") as HTMLInputElement;
    expect(input.type).toBe("password");
    const toggle = screen.getByRole("button", { name: "Show" });
    expect(toggle.getAttribute("aria-pressed")).toBe("false");
    await user.click(toggle);
    expect(input.type).toBe("text");
    expect(screen.getByRole("button", { name: "Hide" }).getAttribute("aria-pressed")).toBe("true");
    await user.click(screen.getByRole("button", { name: "Hide" }));
    expect(input.type).toBe("password");
  });

  it("offers Use credential asset, then a picker of the visible assets", async () => {
    const user = userEvent.setup();
    render(SecretField, { id: "token", label: "Auth Token", assets });
    await user.click(screen.getByRole("button", { name: "More options for Auth Token" }));
    const item = screen.getByRole("menuitem", { name: "Use credential asset" });
    expect(document.activeElement).toBe(item);
    await user.click(item);
    const picker = screen.getByLabelText("Auth Token") as HTMLSelectElement;
    expect(picker.tagName).toBe("SELECT");
    const options = [...picker.options].map((o) => o.textContent);
    expect(options).toEqual(["Choose a credential asset…", "Twilio token (Shared)", "New asset…"]);
    expect(screen.queryByRole("button", { name: "Show" })).toBeNull();
  });
});
