from aish.cli import main

raise SystemExit(main())
