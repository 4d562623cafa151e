import { createRoot } from "react-dom/client";
import { App } from "./App";
import "./styles.css";
import { startTheme } from "./theme";

startTheme(); // before the first paint, so a light-theme choice does not flash dark

createRoot(document.getElementById("root")!).render(<App />);
