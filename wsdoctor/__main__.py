from wsdoctor.cli import main

raise SystemExit(main())
