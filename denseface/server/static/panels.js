// Static parts of the page: region legend, Analyze/Layout tabs, the layout table, clipboard.

/** One toggle button per region of the action (aria-pressed = shown); onToggle(name) on press. */
export function buildLegend(container, regions, onToggle) {
  container.replaceChildren();
  for (const region of regions) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "legend-item";
    button.dataset.region = region.name;
    button.setAttribute("aria-pressed", "true");
    button.title = `${region.name}: ${region.count} points. Press to hide or show.`;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.setProperty("--swatch", region.color);
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = String(region.count);
    button.append(swatch, document.createTextNode(region.name), count);
    button.addEventListener("click", () => onToggle(region.name));
    container.append(button);
  }
}

/** Analyze / Layout tabs (ARIA tab pattern, arrow keys move between tabs). */
export function setupTabs(onSelect) {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    onSelect(tab.id);
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      select(next);
      next.focus();
    });
  });
}

/** Fill a Layout panel table from an action's regions (counts, flat index ranges, order). */
export function buildLayoutTable(tableId, regions, totalId) {
  const body = document.querySelector(`#${tableId} tbody`);
  const shapes = {
    closed: "closed contour", open: "open polyline", pupil: "centre + closed circle", point: "one point",
  };
  let offset = 0;
  for (const region of regions) {
    const row = document.createElement("tr");
    const cells = [region.name, region.count, `${offset}–${offset + region.count - 1}`,
      shapes[region.shape], region.order];
    cells.forEach((value, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) {
        cell.scope = "row";
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.setProperty("--swatch", region.color);
        cell.append(swatch);
      }
      cell.append(document.createTextNode(String(value)));
      row.append(cell);
    });
    body.append(row);
    offset += region.count;
  }
  document.getElementById(totalId).textContent = String(offset);
}

/** Replace a layout picture that does not load with a note. */
export function noteMissingPicture(img) {
  const missing = () => {
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = "(The layout picture is not available on this server.)";
    img.replaceWith(note);
  };
  if (img.complete && !img.naturalWidth) missing(); // failed before this module ran
  else img.addEventListener("error", missing);
}

/** Copy text to the clipboard; returns false when the browser refused. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No async clipboard (non-secure context): select the text and use the legacy command.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
  return true;
}
