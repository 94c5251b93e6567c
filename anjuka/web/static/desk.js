// The property desk's own script: the ID number checked as it is typed (GB 11643),
// the person looked up once the number is whole, and a card job followed live.
// Every page works without it: the server checks again, and pages refresh themselves.
"use strict";

(function () {
  var WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  var CHECK_CHARACTERS = "10X98765432";

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (whole, name) {
      return name in values ? values[name] : whole;
    });
  }

  // What the Chinese input methods type (full-width digits, spaces) folded as the server folds it.
  function normalise(raw) {
    return raw.normalize("NFKC").toUpperCase().replace(/\s+/g, "");
  }

  function checkCharacter(first17) {
    var total = 0;
    for (var i = 0; i < 17; i += 1) {
      total += Number(first17.charAt(i)) * WEIGHTS[i];
    }
    return CHECK_CHARACTERS.charAt(total % 11);
  }

  // The verdict on a resident ID number: {valid, words} with the words from the page.
  function judge(number, words) {
    if (!/^[0-9]*X?$/.test(number) || number.length > 18 || (number.indexOf("X") >= 0 && number.length !== 18)) {
      return { valid: false, words: words.badCharacters };
    }
    if (number.length < 18) {
      return { valid: false, words: fill(words.incomplete, { count: number.length }) };
    }
    var year = Number(number.slice(6, 10));
    var month = Number(number.slice(10, 12));
    var day = Number(number.slice(12, 14));
    var born = new Date(Date.UTC(year, month - 1, day));
    if (year < 1880 || born.getUTCMonth() !== month - 1 || born.getUTCDate() !== day || born > new Date()) {
      return { valid: false, words: words.wrongDate };
    }
    var expected = checkCharacter(number.slice(0, 17));
    if (expected !== number.charAt(17)) {
      return { valid: false, words: fill(words.wrongCheck, { check: expected }) };
    }
    var sex = Number(number.charAt(16)) % 2 ? words.male : words.female;
    return { valid: true, words: fill(words.valid, { birth: number.slice(6, 10) + "-" + number.slice(10, 12) + "-" + number.slice(12, 14), sex: sex }) };
  }

  function arrivalForm(form) {
    var type = form.querySelector("#document_type");
    var number = form.querySelector("#document_number");
    var said = form.querySelector("#id-check");
    var found = form.querySelector("#lookup-result");
    var lookupButton = form.querySelector("#lookup-button");
    var moveOffer = form.querySelector("#move-offer");
    var name = form.querySelector("#name");
    var words = said.dataset;
    var asked = null;
    if (lookupButton) {
      lookupButton.hidden = true; // looked up as the number is completed instead
    }

    function lookUp(value) {
      if (asked === type.value + ":" + value) {
        return;
      }
      asked = type.value + ":" + value;
      var body = new FormData();
      body.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
      body.append("document_type", type.value);
      body.append("document_number", value);
      fetch(form.dataset.lookup, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      }).then(function (response) {
        if (response.status === 429) {
          return { found: false, message: found.dataset.throttled };
        }
        return response.json();
      }).then(function (known) {
        found.textContent = known.message || "";
        found.className = known.found ? "notice warn" : "hint";
        if (known.found && known.current && !known.here && moveOffer) {
          moveOffer.hidden = false;
          moveOffer.querySelector("input").checked = true;
        }
        if (known.found && name && !name.value) {
          name.value = known.name; // a known person keeps the recorded name
        }
      }).catch(function () {
        asked = null;
      });
    }

    function check(event) {
      var value = normalise(number.value);
      if (type.value !== "resident_id") {
        said.textContent = "";
        number.removeAttribute("aria-invalid");
        return;
      }
      if (!value) {
        said.textContent = "";
        return;
      }
      var verdict = judge(value, {
        valid: words.valid,
        wrongCheck: words.wrongCheck,
        wrongDate: words.wrongDate,
        incomplete: words.incomplete,
        badCharacters: words.badCharacters,
        male: words.male,
        female: words.female
      });
      said.textContent = verdict.words;
      said.className = verdict.valid ? "hint good" : "hint bad";
      number.setAttribute("aria-invalid", verdict.valid || value.length < 18 ? "false" : "true");
      if (verdict.valid && event) {
        lookUp(value); // as it is typed, not again when a page comes back with the number
      }
    }

    number.addEventListener("input", check);
    type.addEventListener("change", check);
    number.addEventListener("change", function () {
      var value = normalise(number.value);
      if (type.value !== "resident_id" && value.length >= 5) {
        lookUp(value);
      }
    });
    check(null);
  }

  // A card job followed every second; the page is drawn again once the job is over.
  function followJob(box) {
    var wordsOut = document.getElementById("job-words");
    var detail = document.getElementById("job-detail");
    var detailText = document.getElementById("job-detail-text");
    var status = document.getElementById("card-status");
    function poll() {
      fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error(String(response.status));
          }
          return response.json();
        })
        .then(function (job) {
          if (wordsOut.textContent !== job.sentence) {
            wordsOut.textContent = job.sentence;
          }
          status.textContent = job.card_status_name;
          if (job.detail && !job.good) {
            detailText.textContent = job.detail;
            detail.hidden = false;
          }
          if (job.open) {
            window.setTimeout(poll, 1000);
          } else {
            window.location.reload();
          }
        })
        .catch(function () {
          window.setTimeout(poll, 3000);
        });
    }
    window.setTimeout(poll, 1000);
  }

  var form = document.getElementById("arrival");
  if (form) {
    arrivalForm(form);
  }
  var job = document.getElementById("job");
  if (job && job.dataset.open === "true") {
    followJob(job);
  }
})();
