from denseface.cli import main

raise SystemExit(main())
