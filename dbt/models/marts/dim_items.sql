{#- The latest attributes of every item seen in a catalog snapshot up to ds. -#}

with

items as (

    select * from {{ ref('stg_warehouse__items') }}
    where snapshot_ds <= {{ edgerec.ds_var() }}

),

ranked as (

    select
        *,
        row_number() over (partition by item_id order by snapshot_ds desc) as recency

    from items

),

final as (

    select
        item_id,
        category,
        brand,
        gender,
        price_level,
        age_level,
        bc_type,
        ctr_score,
        cvr_score,
        snapshot_ds

    from ranked
    where recency = 1

)

select * from final
