"""Gates and selection: each rule returns a value and a verdict; one shared piece records them."""
